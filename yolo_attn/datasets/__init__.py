"""Deterministic, offline, code-generated detection datasets in YOLO format.

Every generator writes one on-disk layout (``root/images/{train,val}/*.jpg``, ``root/labels/{train,val}/*.txt``
with ``class cx cy w h`` normalised to [0, 1], and ``root/data.yaml`` for ``yolo train data=root/data.yaml``):

* :func:`build_shapes` (:mod:`.shapes`), a *neutral* benchmark: six shape classes in clutter, each nameable from
  the object's own pixels, so nothing in it rewards global attention over convolution.
* :func:`build_context` (:mod:`.context`), a *context* benchmark: identical grey squares whose class is the colour
  of a cue disc in a far image corner. A detector with only local receptive fields finds the boxes but cannot
  name them.
* the accuracy suite (:mod:`.suite`, :data:`TASKS`): neutral tasks (``shapes``, ``crowd``, ``small``) and context
  tasks of different kinds (a salient distant cue, a weak image-wide tint, counting, nearest-neighbour relations,
  pairs far apart), each with its size, meaningful protocols and what "found the cue" means;
  ``python -m yolo_attn.datasets list`` prints them, ``build NAME DIR`` builds one.

Images are rendered with numpy + OpenCV from a per-image seed derived from ``(seed, dataset, split, index)``, so
output is byte-identical for a given seed and OpenCV build regardless of thread count; the atomic build machinery
is in :mod:`._build`, the drawing primitives in :mod:`.draw`. The packaged data YAMLs (``attn-shapes.yaml``,
``attn-context.yaml``, see :func:`data_yaml`) call the builders from their ``download:`` snippet, so Ultralytics
generates the data on first use. This package imports neither torch nor Ultralytics.

Per-task sets, each in its own module with its label format: :mod:`.segment` (outline polygons), :mod:`.pose`
(keypoints with ``kpt_shape`` and ``flip_idx``), :mod:`.obb` (oriented boxes), :mod:`.classify` (class folders).
"""

from __future__ import annotations

from pathlib import Path

from ._build import DATA_YAML, MARKER, build_dataset, read_marker
from .context import (
    CONTEXT_CUE_BGR,
    CONTEXT_CUE_RADIUS,
    CONTEXT_NAMES,
    CONTEXT_TRAIN_OVERRIDES,
    build_context,
    context_cue_center,
)
from .shapes import SHAPES_NAMES, build_shapes
from .suite import CUE_OVERRIDES, PROTOCOLS, TASKS, Task, build_task, get_task

__all__ = [
    "CONTEXT_CUE_BGR",
    "CONTEXT_CUE_RADIUS",
    "CONTEXT_NAMES",
    "CONTEXT_TRAIN_OVERRIDES",
    "CUE_OVERRIDES",
    "DATA_YAML",
    "MARKER",
    "PROTOCOLS",
    "SHAPES_NAMES",
    "TASKS",
    "Task",
    "build_context",
    "build_dataset",
    "build_shapes",
    "build_task",
    "context_cue_center",
    "data_yaml",
    "get_task",
    "main",
    "read_marker",
]

_PACKAGED = ("shapes", "context")


def data_yaml(name: str) -> Path:
    """Path of a packaged data YAML, usable as ``model.train(data=...)``.

    Args:
        name: ``"shapes"`` or ``"context"``.
    """
    if name not in _PACKAGED:
        raise ValueError(f"name must be 'shapes' or 'context', got {name!r}")
    return Path(__file__).resolve().parent.parent / "configs" / f"attn-{name}.yaml"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point, see :mod:`yolo_attn.datasets.__main__`."""
    from .__main__ import main as _main

    return _main(argv)
