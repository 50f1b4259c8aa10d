"""Side-by-side cost of YOLO models with and without yolo-attn: params, GFLOPs, AMP training step, fp16 latency.

For each model, in one process:
  info      params and GFLOPs at 640 (Ultralytics' get_flops)                                    (always)
  train     AMP (fp16 autocast + GradScaler) training step = forward + the task's Ultralytics loss + backward
            + SGD step (grad-clip 10 and unscale as Ultralytics' trainer), random images and a fixed set of random
            boxes. Every model's step stays resident and the models are interleaved step by step (--rounds rounds
            of --train-steps steps, order reversed every other round): images/s of the median step, the range of
            the per-round ratio to the first model, peak memory, and the step's GPU time (summed kernel time from
            torch.profiler: its cost when the GPU, not the host, is the limit).
            Like `yolo train` defaults: channels_last on CUDA, deterministic mode (warn_only) on.
  latency   fp16 inference (model.fuse().half().eval(), inference_mode, like Ultralytics predict) at
            --latency-batches, eager, synchronised per call, models interleaved call by call; median.
  cudagraph batch-1 latency of a torch.cuda.CUDAGraph capture of the same eval forward (CUDA only).
  compile   batch-1 latency under torch.compile(mode=--compile-mode) (only with --compile: compiling is slow).
  hires     fp16 batch-1 latency and peak memory at --hires-sizes (on by default on CUDA; --no-hires to skip).
Every figure also as a ratio to the first model. A PASS/MISS table checks the yolov8n-attn rows against the
targets (vs yolov8n) in scripts/targets.json. A failing section (OOM, compile error, ...) is reported as "OOM"/"error: ..." and the run
goes on. --budget-s stops starting new work when the time is up, so the tables always print.

Output: progress lines, then compact Markdown tables (the end of stdout); full JSON + Markdown in --out
(default $OUT, else ./bench_out), rewritten after each model.

  python scripts/benchmark.py                                   # the default 7 models, all sections
  python scripts/benchmark.py yolov8n.yaml configs/yolov8n-attn.yaml --sections train,latency
  python scripts/benchmark.py configs/yolov8n-attn.yaml configs/yolov8n-attn.yaml:head_dim=32,kv_tokens=1600
                                                                # variants: SelfAttentionBlock args overridden
  python scripts/benchmark.py yolov8n.yaml configs/yolov8n-attn.yaml configs/yolov8n-attn.yaml@66f4337
                                                                # ... and the attention code of a git revision
  python scripts/benchmark.py --profile configs/yolov8n-attn.yaml   # top CUDA kernels of one training step
  python scripts/benchmark.py --profile configs/yolov8n-attn.yaml --profile-infer   # ... of one eval forward
  python scripts/benchmark.py --device cpu --quick                  # CPU smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import _common  # noqa: F401  (the repository root on sys.path)
import torch

import bench_profile
from bench_run import Bench

DEFAULT_MODELS = [
    "yolov8n.yaml",
    "configs/yolov8n-attn.yaml",
    "configs/yolov8n-attn-p45.yaml",
    "configs/yolov8n-attn-standard.yaml",
    "configs/yolov8n-attn-efficient.yaml",
    "yolo11n.yaml",
    "yolo12n.yaml",
]
QUICK_MODELS = ["yolov8n.yaml", "configs/yolov8n-attn.yaml", "configs/yolov8n-attn-p45.yaml"]
ALL_SECTIONS = ("train", "latency", "cudagraph", "compile", "hires")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="model YAMLs (default: the 7 of the module docstring; --quick: 3)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1-2 steps, 3 models: a smoke test")
    p.add_argument("--sections", default="train,latency,cudagraph,hires", help=f"comma list of {ALL_SECTIONS}")
    p.add_argument("--train-sizes", default=None, help="imgsz:batch list (default 640:32,1280:8)")
    p.add_argument("--train-steps", type=int, default=None, help="timed steps per model per round (default 8)")
    p.add_argument("--train-warmup", type=int, default=None, help="warm-up steps (default 3)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved train timing rounds, order reversed each round (default 6)")
    p.add_argument("--latency-imgsz", type=int, default=None, help="default 640")
    p.add_argument("--latency-batches", default=None, help="default 1,32")
    p.add_argument("--latency-iters", type=int, default=None, help="default 50")
    p.add_argument("--latency-warmup", type=int, default=None, help="default 10")
    p.add_argument("--hires", action=argparse.BooleanOptionalAction, default=None, help="default: on for CUDA")
    p.add_argument("--hires-sizes", default=None, help="default 2048,4096,8192")
    p.add_argument("--hires-iters", type=int, default=None, help="default 10")
    p.add_argument("--hires-warmup", type=int, default=None, help="default 2")
    p.add_argument("--max-sample-s", type=float, default=None,
                   help="cap on seconds per measurement: slow calls get fewer iterations (min 3); default 4")
    p.add_argument("--compile", action="store_true", help="add the torch.compile section (slow: minutes per model)")
    p.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    p.add_argument("--train-compile", default="", metavar="MODE",
                   help="train section: torch.compile the network in this mode (e.g. default), as `yolo train compile=`")
    p.add_argument("--no-amp", action="store_true", help="train in fp32")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="training memory format; auto = on for CUDA, as Ultralytics' trainer")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="Ultralytics' default deterministic=True (warn_only) during training")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting new measurements after this many seconds (default 540 on CUDA, none on CPU)")
    p.add_argument("--profile", metavar="MODEL", default=None,
                   help="only profile one training step of MODEL (at the first --train-sizes entry)")
    p.add_argument("--trace", action="store_true", help="with --profile: also write a Chrome trace")
    p.add_argument("--profile-infer", action="store_true", help="with --profile: an eval forward, not a training step")
    p.add_argument("--sdpa", choices=("default", "flash", "efficient", "cudnn"), default="default",
                   help="SDPA backend: default = torch's choice; else only that one (and the math fallback) enabled")
    p.add_argument("--out", default=os.environ.get("OUT") or "bench_out")
    a = p.parse_args(argv)
    q = a.quick
    defaults = {
        "train_sizes": "64:2,96:1" if q else "640:32,1280:8",
        "train_steps": 1 if q else 8,
        "rounds": 1 if q else 6,
        "train_warmup": 1 if q else 3,
        "latency_imgsz": 64 if q else 640,
        "latency_batches": "1,2" if q else "1,32",
        "latency_iters": 2 if q else 50,
        "latency_warmup": 1 if q else 10,
        "hires_sizes": "128,256" if q else "2048,4096,8192",
        "hires_iters": 2 if q else 10,
        "hires_warmup": 1 if q else 2,
        "max_sample_s": 1.0 if q else 4.0,
        "budget_s": 540.0 if a.device.startswith("cuda") else 0.0,
    }
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    bad = set(a.sections.split(",")) - set(ALL_SECTIONS)
    if bad:
        p.error(f"unknown section(s) {sorted(bad)}; choose from {ALL_SECTIONS}")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.deterministic:  # read when cuBLAS starts: set before any CUDA work, as `yolo train` effectively does
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    warnings.filterwarnings("ignore", message=".*deterministic.*")  # warn_only noise from deterministic mode
    if args.sdpa != "default":
        chosen = {"flash": "flash", "efficient": "mem_efficient", "cudnn": "cudnn"}[args.sdpa]
        for b in ("flash", "mem_efficient", "cudnn"):
            getattr(torch.backends.cuda, f"enable_{b}_sdp")(b == chosen)
    if args.profile:
        return bench_profile.profile_mode(args)
    return Bench(args, args.models or (QUICK_MODELS if args.quick else DEFAULT_MODELS)).main()


if __name__ == "__main__":
    sys.exit(main())
