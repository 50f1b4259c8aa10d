"""What one SelfAttentionBlock costs in a training step, and what its parts cost the host: the per-block view that
benchmark.py's whole-model numbers come from.

Sections (deterministic mode as `yolo train` sets it, AMP fp16, channels-last inputs, as in training):
  ops     host time of single calls on tiny fp16 tensors, deterministic on and off: GEMM vs 1x1 convolution, SDPA,
          BatchNorm. At these sizes the GPU idles, so the time is what the host spends issuing the call.
  pool    GPU time (summed kernel time) of key/value pooling, forward + backward, at the shipped nano model's P3 and
          P4 at 640 px, batch 32: avg_pool2d on channels-last maps vs a mean over a view of the windows.
  blocks  the shipped block at P3, P4 and P5 of yolov8n-attn at 640 px: host time per forward + backward at batch 2,
          GPU time and kernel count at batch 32. With --ref REV, the same block with the attention code of git
          revision REV beside it (see refimpl.py), same weights.
  infer   the same blocks in inference (fp16, channels-first maps, as Ultralytics predicts): host time per forward
          at batch 1, GPU time at batch 32; fused (BatchNorm folded) and not, and at REV.

  python scripts/block_costs.py --ref 66f4337        # on the GPU
  python scripts/block_costs.py --device cpu --quick # smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts, as `yolo train` sets it
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from ultralytics.utils.torch_utils import init_seeds, unset_deterministic  # noqa: E402

import refimpl  # noqa: E402
from benchmark import Dev, profiled_events  # noqa: E402
from yolo_attn import SelfAttentionBlock  # noqa: E402

LEVELS = [(64, 80), (128, 40), (256, 20)]  # yolov8n-attn's P3, P4, P5 at 640 px: (channels, side)


class Timer:
    def __init__(self, device: torch.device, quick: bool):
        self.device, self.quick = device, quick
        self.dev = Dev(device)

    def host_us(self, fn) -> float:
        """Best of 5 runs of the mean time per call; with a near-idle GPU this is the host's cost of issuing it."""
        n, reps = (4, 2) if self.quick else (60, 5)
        for _ in range(3 if self.quick else 30):
            fn()
        best = float("inf")
        for _ in range(reps):
            self.dev.sync()
            t = time.perf_counter()
            for _ in range(n):
                fn()
            self.dev.sync()
            best = min(best, (time.perf_counter() - t) / n * 1e6)
        return best

    def gpu_us(self, fn) -> tuple[float | None, int | None]:
        """Summed kernel time and kernel count of one call (CUDA only)."""
        if not self.dev.cuda:
            return None, None
        for _ in range(5):
            fn()
        self.dev.sync()
        kernels = [k for e in profiled_events(fn, self.dev) for k in (getattr(e, "kernels", None) or [])]
        return sum(k.duration for k in kernels), len(kernels)


def train_call(module, x):
    """One forward + backward as a training step runs it (autocast fp16 on CUDA)."""
    with torch.autocast(x.device.type, torch.float16, enabled=x.device.type == "cuda"):
        y = module(x)
    y.backward(torch.ones_like(y))


def section_ops(t: Timer, dtype) -> list[list[str]]:
    dev = t.device
    x2d = torch.randn(800, 64, device=dev, dtype=dtype)
    w2d = torch.randn(192, 64, device=dev, dtype=dtype)
    xcl = torch.randn(2, 64, 20, 20, device=dev, dtype=dtype).to(memory_format=torch.channels_last)
    q = torch.randn(2, 1, 400, 64, device=dev, dtype=dtype)
    bn = nn.BatchNorm2d(64).to(dev, dtype)
    xg, wg, qg, xclg = (t.clone().requires_grad_() for t in (x2d, w2d, q, xcl))
    w4g = w2d.view(192, 64, 1, 1).clone().requires_grad_()
    calls = {
        "GEMM (cuBLAS mm) 800x64 @ 64x192, forward": lambda: torch.mm(x2d, w2d.t()),
        "the same as a 1x1 convolution (cuDNN), forward": lambda: F.conv2d(xcl, w2d.view(192, 64, 1, 1)),
        "SDPA (2, 1, 400, 64), forward": lambda: F.scaled_dot_product_attention(q, q, q),
        "GEMM forward + backward": lambda: torch.mm(xg, wg.t()).sum().backward(),
        "1x1 convolution forward + backward": lambda: F.conv2d(xclg, w4g).sum().backward(),
        "SDPA forward + backward": lambda: F.scaled_dot_product_attention(qg, qg, qg).sum().backward(),
        "BatchNorm2d (training) forward + backward": lambda: bn(xclg).sum().backward(),
    }
    res: dict[str, list[float]] = {}
    for det in (True, False):
        init_seeds(0, deterministic=True) if det else unset_deterministic()
        for name, fn in calls.items():
            with torch.no_grad() if "backward" not in name else torch.enable_grad():
                res.setdefault(name, []).append(t.host_us(fn))
    init_seeds(0, deterministic=True)
    return [[name, f"{a:.0f}", f"{b:.0f}"] for name, (a, b) in res.items()]


def section_pool(t: Timer, dtype, batch: int) -> list[list[str]]:
    rows = []
    for (c, side), f in zip(LEVELS[:2], (4, 2)):
        for name, fn in {
            "avg_pool2d, channels-last map": lambda u: F.avg_pool2d(u.permute(0, 3, 1, 2), f, f, ceil_mode=True,
                                                                   count_include_pad=False),
            "mean over a view of the windows": lambda u: u.view(u.shape[0], side // f, f, side // f, f, c).mean((2, 4)),
        }.items():
            u = torch.randn(batch, side, side, c, device=t.device, dtype=dtype, requires_grad=True)
            us, n = t.gpu_us(lambda: fn(u).sum().backward())
            rows.append([name, f"{c}x{side}x{side} / {f}", "n/a" if us is None else f"{us:.0f}", str(n or "n/a")])
    return rows


def shipped_block(c: int) -> SelfAttentionBlock:
    """The shipped block at c channels, its output projection non-zero (as after some training: every path works)."""
    torch.manual_seed(0)
    block = SelfAttentionBlock(c, "standard", 64, None, None, True, 400)
    nn.init.normal_(block.attn.proj.weight, std=0.02)
    return block


def block_row(name: str, c: int, side: int, host: float, us: float | None, n: int | None) -> list[str]:
    return [name, f"{c}x{side}x{side}", f"{host:.0f}", "n/a" if us is None else f"{us:.0f}", str(n or "n/a")]


def section_blocks(t: Timer, dtype, ref: str | None, batches: tuple[int, int]) -> list[list[str]]:
    rows = []
    for c, side in LEVELS:
        block = shipped_block(c)
        variants = {"this checkout": block}
        if ref:
            variants[f"@{ref}"] = refimpl.use_revision(copy.deepcopy(block), ref)
        for name, b in variants.items():
            b = b.to(t.device).to(memory_format=torch.channels_last).train()
            xs = [torch.randn(n, c, side, side, device=t.device, dtype=dtype).to(memory_format=torch.channels_last)
                  .requires_grad_() for n in batches]
            host = t.host_us(lambda: train_call(b, xs[0]))
            rows.append(block_row(name, c, side, host, *t.gpu_us(lambda: train_call(b, xs[1]))))
    return rows


def section_infer(t: Timer, dtype, ref: str | None, batches: tuple[int, int]) -> list[list[str]]:
    rows = []
    for c, side in LEVELS:
        block = shipped_block(c)
        variants = {"this checkout, fused (as Ultralytics predicts)": copy.deepcopy(block).fuse(),
                    "this checkout, BatchNorm kept": block}
        if ref:
            variants[f"@{ref}"] = refimpl.use_revision(copy.deepcopy(block), ref)
        for name, b in variants.items():
            b = b.to(t.device, dtype).eval()
            xs = [torch.randn(n, c, side, side, device=t.device, dtype=dtype) for n in batches]  # channels-first
            with torch.inference_mode():
                host = t.host_us(lambda: b(xs[0]))
                rows.append(block_row(name, c, side, host, *t.gpu_us(lambda: b(xs[1]))))
    return rows


def table(header, rows) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sections", default="ops,pool,blocks,infer")
    p.add_argument("--ref", default=None, help="git revision whose attention code to time beside this checkout's")
    p.add_argument("--quick", action="store_true", help="few calls, small batches: a smoke test")
    p.add_argument("--out", default=None, help="write block_costs.json and .md here")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*deterministic.*")
    t = Timer(torch.device(a.device), a.quick)
    cuda = t.device.type == "cuda"
    dtype = torch.float16 if cuda else torch.float32
    init_seeds(0, deterministic=True)
    sections = set(a.sections.split(","))
    name = torch.cuda.get_device_name(t.device) if cuda else "cpu"
    md = [f"## Block costs: {name}, torch {torch.__version__}, "
          f"cudnn {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'n/a'}"]
    out: dict = {"device": name, "torch": torch.__version__, "ref": a.ref}
    if "ops" in sections:
        rows = section_ops(t, dtype)
        out["ops"] = rows
        md += ["", f"### Host time per call (us), tiny {str(dtype).removeprefix('torch.')} tensors",
               table(["call", "deterministic (yolo train)", "not deterministic"], rows)]
    if "pool" in sections:
        pool_batch = 2 if a.quick else 32
        rows = section_pool(t, dtype, pool_batch)
        out["pool"] = rows
        md += ["", f"### Key/value pooling, forward + backward, batch {pool_batch}", table(["pooling", "map / factor", "GPU us", "kernels"], rows)]
    if "blocks" in sections:
        batches = (1, 2) if a.quick else (2, 32)
        rows = section_blocks(t, dtype, a.ref, batches)
        out["blocks"] = rows
        md += ["", f"### One block, training forward + backward (host at batch {batches[0]}, GPU at batch {batches[1]})",
               table(["attention code", "C x H x W", "host us", "GPU us", "kernels"], rows)]
    if "infer" in sections:
        batches = (1, 2) if a.quick else (1, 32)
        rows = section_infer(t, dtype, a.ref, batches)
        out["infer"] = rows
        md += ["", f"### One block, inference forward on a channels-first map (host at batch {batches[0]}, GPU at batch "
               f"{batches[1]})", table(["attention code", "C x H x W", "host us", "GPU us", "kernels"], rows)]
    text = "\n".join(md)
    print(text)
    if a.out:
        d = Path(a.out)
        d.mkdir(parents=True, exist_ok=True)
        (d / "block_costs.md").write_text(text + "\n")
        (d / "block_costs.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
