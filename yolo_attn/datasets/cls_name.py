"""Resolve ``data=attn-shapes-cls`` offline: build the class folders when Ultralytics asks for that exact name.

Ultralytics' ``check_cls_dataset`` turns a bare name into ``DATASETS_DIR/name`` and downloads it if missing; there
is no YAML ``download:`` hook for classification. :func:`patch_check_cls_dataset` wraps the function where the
trainer, validator and exporter imported it, and builds the set first for :data:`CLS_NAME` only; every other
argument passes through unchanged. Idempotent.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

CLS_NAME = "attn-shapes-cls"
_USERS = ("ultralytics.data.utils", "ultralytics.engine.trainer", "ultralytics.engine.validator",
          "ultralytics.engine.exporter")


def patch_check_cls_dataset() -> None:
    """Install the wrapper in every Ultralytics module that calls ``check_cls_dataset`` (safe to call twice)."""
    for name in _USERS:
        mod = importlib.import_module(name)
        orig = getattr(mod, "check_cls_dataset", None)
        if orig is None or getattr(orig, "_yolo_attn", False):
            continue

        def wrapped(dataset: Any, split: str = "", _orig: Any = orig) -> dict:
            if str(dataset) == CLS_NAME and not Path(dataset).is_dir():
                from ultralytics.data import utils  # the DATASETS_DIR check_cls_dataset itself reads

                from .classify import build_shapes_cls

                build_shapes_cls(Path(utils.DATASETS_DIR) / CLS_NAME)
            return _orig(dataset, split)

        wrapped._yolo_attn = True
        setattr(mod, "check_cls_dataset", wrapped)
