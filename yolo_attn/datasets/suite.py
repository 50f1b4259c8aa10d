"""The accuracy suite: neutral tasks (local features suffice) and context tasks (the class lives elsewhere).

Every task is generated offline and deterministically like :func:`~yolo_attn.datasets.build_shapes`; a task states
what it measures, its size, which training protocols are meaningful for it and, for context tasks, what "found the
cue" means. A detector that localises perfectly but cannot see the cue spreads its score over the ``no_cue_k``
classes its local appearance allows, so its mAP50-95 is about ``ceiling / no_cue_k``; a run *found the cue* when its
mAP50-95 is at least half way from there to the ceiling, ``ceiling * (1 + 1 / no_cue_k) / 2``. The ceiling is the
same run's class-agnostic mAP50-95 on the same val set (how well it localises, whatever it calls the boxes), so
the threshold needs no number fixed in advance.

Protocols: ``default`` is Ultralytics' default augmentation; ``cue`` is ``mosaic=0 scale=0 translate=0``
(:data:`CUE_OVERRIDES`), which keeps every cue in the image and tied to its own objects. Mosaic pastes four images
(four cues, four tints, four counts) into one and zoom/shift crop cues away, so a context task lists ``default``
only where its cue mostly survives that (nearest-neighbour relations inside one pasted tile); neutral tasks list
both, ``default`` first (their main protocol) and ``cue`` as the control for context tasks trained that way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import relations, shapes, tint
from ._build import Box, build_dataset
from .context import CONTEXT_NAMES, CONTEXT_TRAIN_OVERRIDES, check_min_gap, render_context
from .draw import SHAPES_NAMES

CUE_OVERRIDES: dict[str, float] = dict(CONTEXT_TRAIN_OVERRIDES)
PROTOCOLS: dict[str, dict[str, float]] = {"default": {}, "cue": CUE_OVERRIDES}

Render = Callable[[np.random.Generator, int, int], tuple[np.ndarray, list[Box]]]


@dataclass(frozen=True)
class Task:
    """One suite task.

    Args:
        name: Task name (``python -m yolo_attn.datasets build NAME DIR``).
        kind: ``"neutral"`` (local features suffice) or ``"context"`` (the class is set elsewhere in the image).
        measures: One line: what the task measures.
        names: Class names.
        render: ``render(rng, side, index) -> (uint8 BGR image, pixel boxes)``.
        imgsz: Image side the task is built and trained at.
        n_train: Training images.
        n_val: Validation images.
        protocols: Meaningful protocols (keys of :data:`PROTOCOLS`), the first being the task's main one.
        no_cue_k: Classes a detector without the cue cannot tell apart (1 for neutral tasks).
        found: What "found the cue" means, in words.
    """

    name: str
    kind: str
    measures: str
    names: tuple[str, ...]
    render: Render
    imgsz: int = 320
    n_train: int = 800
    n_val: int = 200
    protocols: tuple[str, ...] = ("default",)
    no_cue_k: int = 1
    found: str = ""
    extra: dict = field(default_factory=dict)

    def found_threshold(self, ceiling: float) -> float | None:
        """mAP50-95 at or above which a run found the cue, given its class-agnostic mAP50-95; None if neutral."""
        if self.kind != "context":
            return None
        return ceiling * (1.0 + 1.0 / self.no_cue_k) / 2.0

    def build(self, root: str | os.PathLike, n_train: int | None = None, n_val: int | None = None,
              imgsz: int | None = None, seed: int = 0, workers: int | None = None) -> Path:
        """Build the task's dataset (``root/data.yaml`` included); sizes default to the task's own."""
        return build_dataset(
            self.name,
            root,
            self.n_train if n_train is None else n_train,
            self.n_val if n_val is None else n_val,
            self.imgsz if imgsz is None else imgsz,
            seed,
            workers,
            self.render,
            dict(self.extra),
            self.names,
            who=f"task {self.name}",
        )


def _context_render(min_gap: float) -> Render:
    gap = check_min_gap(min_gap)
    return lambda rng, side, index: render_context(rng, side, index, gap)


_FOUND = (
    "mAP50-95 >= (agnostic + agnostic / {k}) / 2, half way from a cue-blind detector (agnostic / {k}) to the ceiling"
    " (agnostic = the run's class-agnostic mAP50-95)"
)

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("shapes", "neutral", "six shape classes in clutter, 1-10 per image at 4-40 % of the side",
             SHAPES_NAMES, shapes.render_shapes, protocols=("default", "cue")),
        Task("crowd", "neutral", "crowding and occlusion: 12-30 shapes per image, each up to ~55 % hidden",
             SHAPES_NAMES, shapes.render_crowd, protocols=("default", "cue")),
        Task("small", "neutral", "small objects in a large image: 4-24 shapes at 1.5-5 % of a 640 px side",
             SHAPES_NAMES, shapes.render_small, imgsz=640, protocols=("default", "cue")),
        Task("context", "context", "salient distant cue: grey squares named by a saturated corner disc >= 40 % away",
             CONTEXT_NAMES, _context_render(0.4), imgsz=640, protocols=("cue",), no_cue_k=4,
             found=_FOUND.format(k=4), extra={"min_gap": 0.4}),
        Task("tint", "context", "weak cue over the whole image: a faint colour cast masked locally by a colour field",
             tint.TINT_NAMES, tint.render_tint, protocols=("cue",), no_cue_k=4, found=_FOUND.format(k=4)),
        Task("count", "context", "counting: the class is how many grey squares (2-5) the image holds",
             relations.COUNT_NAMES, relations.render_count, protocols=("cue",), no_cue_k=4, found=_FOUND.format(k=4)),
        Task("nearest_colour", "context", "relation: a square is named by the colour of its nearest disc (all 4 shown)",
             relations.NEAREST_COLOUR_NAMES, relations.render_nearest_colour, protocols=("cue", "default"),
             no_cue_k=4, found=_FOUND.format(k=4)),
        Task("neighbour_shape", "context", "relation: a square is named by the shape of its nearest key shape",
             relations.NEIGHBOUR_SHAPE_NAMES, relations.render_neighbour_shape, protocols=("cue", "default"),
             no_cue_k=4, found=_FOUND.format(k=4)),
        Task("mirror", "context", "pairs far apart: a square is named by the disc at its mirror point (centre)",
             relations.MIRROR_NAMES, relations.render_mirror, protocols=("cue",), no_cue_k=4, found=_FOUND.format(k=4)),
    )
}


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name raises listing the tasks."""
    if name not in TASKS:
        raise ValueError(f"unknown suite task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]


def build_task(name: str, root: str | os.PathLike, **kwargs) -> Path:
    """Build suite task ``name`` into ``root``; keyword arguments as :meth:`Task.build`."""
    return get_task(name).build(root, **kwargs)


def list_lines() -> list[str]:
    """One line per task: name, kind, what it measures."""
    w = max(map(len, TASKS))
    return [f"{t.name:<{w}}  {t.kind:<7}  {t.measures}" for t in TASKS.values()]
