"""CLI: ``python -m yolo_attn.datasets shapes|context DIR [--n-train N] [--n-val N] [--imgsz N] [--seed N]``.

Also ``list`` (the accuracy suite, one task a line: name, kind, what it measures) and ``build NAME DIR`` (one suite
task at its own size unless ``--n-train/--n-val/--imgsz`` say otherwise).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ._build import DATA_YAML
from .context import CONTEXT_TRAIN_OVERRIDES, build_context
from .shapes import build_shapes
from .suite import PROTOCOLS, TASKS, list_lines


def _train_hint(root: Path, imgsz: int, overrides: dict[str, float]) -> str:
    extra = "".join(f" {k}={v:g}" for k, v in overrides.items())
    return f"train on it: yolo train model=yolov8n.yaml data={root / DATA_YAML} imgsz={imgsz}{extra}"


def main(argv: Sequence[str] | None = None) -> int:
    """Build a dataset and print where it is and how to train on it.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["list"]:
        print("\n".join(list_lines()))
        return 0
    if argv[:1] == ["build"]:
        return _build_task(argv[1:])
    p = argparse.ArgumentParser(
        prog="python -m yolo_attn.datasets",
        description="Generate a synthetic YOLO dataset (also: 'list' the suite tasks, 'build NAME DIR' one of them).",
    )
    p.add_argument("kind", choices=("shapes", "context"))
    p.add_argument("root", type=Path, help="output directory")
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-val", type=int, default=120)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="rendering threads (output does not depend on it)")
    p.add_argument("--min-gap", type=float, default=0.4, help="context only: cue-to-box gap as a fraction of imgsz")
    a = p.parse_args(argv)
    t = time.perf_counter()
    kw = dict(n_train=a.n_train, n_val=a.n_val, imgsz=a.imgsz, seed=a.seed, workers=a.workers)
    try:
        if a.kind == "shapes":
            root, overrides = build_shapes(a.root, **kw), {}
        else:
            root, overrides = build_context(a.root, min_gap=a.min_gap, **kw), CONTEXT_TRAIN_OVERRIDES
    except (TypeError, ValueError, FileExistsError) as e:
        p.error(str(e))
    print(f"{a.kind} dataset ready at {root} ({time.perf_counter() - t:.1f}s)")
    print(_train_hint(root, a.imgsz, overrides))
    return 0



def _build_task(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m yolo_attn.datasets build", description="Build one suite task.")
    p.add_argument("name", choices=tuple(TASKS))
    p.add_argument("root", type=Path, help="output directory")
    p.add_argument("--n-train", type=int, default=None, help="default: the task's own")
    p.add_argument("--n-val", type=int, default=None, help="default: the task's own")
    p.add_argument("--imgsz", type=int, default=None, help="default: the task's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="rendering threads (output does not depend on it)")
    a = p.parse_args(argv)
    task = TASKS[a.name]
    t = time.perf_counter()
    try:
        root = task.build(a.root, n_train=a.n_train, n_val=a.n_val, imgsz=a.imgsz, seed=a.seed, workers=a.workers)
    except (TypeError, ValueError, FileExistsError) as e:
        p.error(str(e))
    print(f"{task.name} ({task.kind}: {task.measures}) ready at {root} ({time.perf_counter() - t:.1f}s)")
    if task.found:
        print(f"found the cue: {task.found}")
    for proto in task.protocols:
        print(f"protocol {proto}: " + _train_hint(root, a.imgsz or task.imgsz, PROTOCOLS[proto]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
