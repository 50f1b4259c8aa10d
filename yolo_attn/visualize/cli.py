"""The command line: ``python -m yolo_attn.visualize MODEL SOURCE --out DIR ...``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .render import visualize_attention

def _query_arg(text: str) -> tuple[float, float]:
    try:
        r, c = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL pixels, got {text!r}") from None
    return r, c


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m yolo_attn.visualize MODEL SOURCE --out DIR [--layer I ...] [--query ROW,COL ...] ...``."""
    p = argparse.ArgumentParser(
        prog="python -m yolo_attn.visualize",
        description="Save attention heat maps of an attention YOLO model over images, and print a per-layer summary.",
    )
    p.add_argument("model", help="Ultralytics .pt checkpoint of an attention model")
    p.add_argument("source", help="image, folder or glob")
    p.add_argument("--out", required=True, type=Path, help="output folder for the PNGs")
    p.add_argument("--layer", type=int, nargs="+", action="extend",
                   help="index into model.model of an attention layer (default: every SelfAttentionBlock)")
    p.add_argument("--query", type=_query_arg, nargs="+", action="extend", metavar="ROW,COL",
                   help="query pixel of the original image (default: centre of each detected box)")
    p.add_argument("--heads", action="store_true", help="also draw every head, not only their mean")
    p.add_argument("--max-queries", type=int, default=6, help="most box-centre queries per image (default 6)")
    p.add_argument("--imgsz", type=int, nargs="+", help="inference size (default: the model's)")
    p.add_argument("--conf", type=float, help="detection confidence threshold (default 0.25)")
    p.add_argument("--device", default="cpu", help="inference device (default cpu)")
    p.add_argument("--alpha", type=float, default=0.7, help="heat-map opacity at the peak (default 0.7)")
    a = p.parse_args(argv)
    kw: dict[str, Any] = {"device": a.device}
    if a.imgsz:
        kw["imgsz"] = a.imgsz[0] if len(a.imgsz) == 1 else a.imgsz
    if a.conf is not None:
        kw["conf"] = a.conf
    try:
        paths = visualize_attention(a.model, a.source, a.out, a.layer, a.query, heads=a.heads,
                                    max_queries=a.max_queries, alpha=a.alpha, **kw)
    except (ValueError, TypeError, FileNotFoundError) as e:
        p.error(str(e))
    print(f"{len(paths)} attention map(s) saved to {a.out}")
    return 0
