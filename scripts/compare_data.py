"""The datasets of scripts/compare.py: the embedded `shapes` / `context` sets built once at the requested size (or a
data YAML path taken as it is), and a label pre-scan so parallel runs never race to write Ultralytics' label cache.
(The accuracy suite's tasks are built by compare_suite.prepare_suite.)"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def prepare_data(name: str, a: argparse.Namespace) -> tuple[str, str, dict]:
    """Build (once) an embedded dataset, or take a data YAML path. Returns (label, data yaml path, train overrides)."""
    if name not in ("shapes", "context"):
        p = Path(name).expanduser()
        if not p.is_file():
            raise SystemExit(f"--data {name!r}: not 'shapes', 'context' or an existing data YAML")
        return p.stem, str(p.resolve()), {}

    sys.path.insert(0, str(REPO))
    from yolo_attn import datasets as ds

    builder = ds.build_shapes if name == "shapes" else ds.build_context
    names = ds.SHAPES_NAMES if name == "shapes" else ds.CONTEXT_NAMES
    wanted = {
        "n_train": a.n_train,
        "n_val": a.n_val,
        "imgsz": a.data_imgsz or max(a.imgsz, 64),
        "seed": a.data_seed,
        "workers": os.cpu_count() or 1,
        "min_gap": a.min_gap if name == "context" else None,
    }
    params = inspect.signature(builder).parameters
    kw = {k: v for k, v in wanted.items() if v is not None and k in params}
    ignored = [k for k, v in wanted.items() if v is not None and k not in params and k != "workers"]
    if ignored:
        print(f"warning: {builder.__name__} does not take {ignored}; ignored", flush=True)
    tag = "-".join(f"{k}{kw[k]}" for k in ("n_train", "n_val", "imgsz", "seed", "min_gap") if k in kw)
    tag = tag.replace("n_train", "tr").replace("n_val", "va").replace("imgsz", "px").replace("min_gap", "gap")
    root = Path(a.datasets_dir).expanduser().resolve() / f"{name}-{tag}"
    t = time.perf_counter()
    root = Path(builder(root, **kw)).resolve()
    yaml_path = root.parent / f"{root.name}.yaml"
    lines = [
        f"# written by scripts/compare.py: {builder.__name__}({', '.join(f'{k}={v!r}' for k, v in kw.items())})",
        f"path: {json.dumps(str(root))}",
        "train: images/train",
        "val: images/val",
        "names:",
        *[f"  {i}: {n}" for i, n in enumerate(names)],
        "",
    ]
    tmp = yaml_path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, yaml_path)
    overrides = dict(getattr(ds, f"{name.upper()}_TRAIN_OVERRIDES", {}) or {})
    if name == "context" and not overrides:  # the dataset's documented requirement, if the constant is missing
        overrides = {"mosaic": 0.0, "scale": 0.0, "translate": 0.0}
    n_imgs = {s: len(list((root / "images" / s).glob("*.jpg"))) for s in ("train", "val")}
    print(f"data {name}: {root} ({n_imgs['train']} train, {n_imgs['val']} val, {time.perf_counter() - t:.1f}s)", flush=True)
    return name, str(yaml_path), overrides


def prescan_labels(data_yaml: str, imgsz: int, cache: str, single_cls: bool = False) -> None:
    """Create Ultralytics' labels/*.cache (and, for cache=disk, images/*.npy) once, so parallel runs only read them."""
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(data_yaml)
    for split in ("train", "val"):
        paths = data.get(split)
        for p in paths if isinstance(paths, list) else [paths]:
            if p:
                YOLODataset(
                    img_path=p, imgsz=imgsz, augment=False, data=data, task="detect",
                    cache=cache == "disk" and "disk", single_cls=single_cls,
                )
