"""CPU deployment cost: ONNX Runtime latency of exported models, side by side (issue 13's CPU figure).

Exports each model config (random weights: latency does not depend on them) to ONNX with Ultralytics' exporter at
each size, then times onnxruntime's CPUExecutionProvider on batch 1, median of --iters runs after warm-up.

  python scripts/onnx_cpu_latency.py                       # yolov8n vs configs/yolov8n-attn.yaml at 640 and 1280
  python scripts/onnx_cpu_latency.py yolov8n.yaml configs/yolov8n-attn-p45.yaml --sizes 640 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import yolo_attn  # noqa: F401  registers the layers
from ultralytics import YOLO

REPO = Path(__file__).resolve().parents[1]


def export(cfg: str, imgsz: int, out: Path) -> Path:
    """Export a freshly built model to ONNX (static shape, fp32) and return the file."""
    # "configs/yolov8n-attn.yaml" names scale n of a file in this repository: resolve it from any working directory
    path = str(REPO / cfg) if "/" in cfg and not Path(cfg).is_absolute() and (REPO / cfg).parent.is_dir() else cfg
    model = YOLO(path)
    model.model.names = {i: str(i) for i in range(80)}
    pt = out / f"{Path(cfg).stem}.pt"
    model.save(pt)
    return Path(YOLO(str(pt)).export(format="onnx", imgsz=imgsz, simplify=True, verbose=False))


def latency_ms(onnx: Path, imgsz: int, threads: int, warmup: int, iters: int) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    for _ in range(warmup):
        session.run(None, {name: x})
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", default=["yolov8n.yaml", "configs/yolov8n-attn.yaml"])
    p.add_argument("--sizes", default="640,1280")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    print(f"# onnxruntime {ort.__version__} CPUExecutionProvider, {a.threads} threads, {platform.processor() or platform.machine()}, "
          f"batch 1, median of {a.iters}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for cfg in a.models:
                d = Path(tmp) / f"{size}-{Path(cfg).stem}"
                d.mkdir()
                ms = latency_ms(export(cfg, size, d), size, a.threads, a.warmup, a.iters)
                rows.setdefault(cfg, {})[size] = ms
                print(f"  {cfg} @{size}: {ms:.1f} ms", flush=True)
    base = rows[a.models[0]]
    print("\n| model | " + " | ".join(f"{s} px ms" for s in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for cfg, r in rows.items():
        print(f"| {cfg} | " + " | ".join(f"{r[s]:.1f} ({r[s] / base[s]:.2f}x)" for s in sizes) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
