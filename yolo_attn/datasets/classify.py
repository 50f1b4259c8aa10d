"""The shapes classification set: one centred shape per image, stored as class folders for ``task=classify``.

Layout ``root/{train,val}/<class>/*.jpg`` (what Ultralytics' ClassificationDataset reads); same renderer, palette
and clutter as :mod:`.shapes`, so a classifier and a detector see the same objects.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import draw
from ._build import build_dataset
from .draw import SHAPES_NAMES


class ClassFolderLayout:
    """``{split}/<class name>/{stem}.jpg``; the label is the class index."""

    def prepare(self, root: Path, split: str) -> None:
        for name in SHAPES_NAMES:
            (root / split / name).mkdir(parents=True)

    def write(self, root: Path, split: str, stem: str, jpeg: bytes, label: int, side: int) -> None:
        (root / split / SHAPES_NAMES[label] / f"{stem}.jpg").write_bytes(jpeg)


def render_cls(rng: np.random.Generator, side: int, index: int) -> tuple[np.ndarray, int]:
    """One image with a single shape near the centre; class cycles with ``index`` so every folder is filled."""
    cls = index % len(SHAPES_NAMES)
    img = draw.background(rng, side, 1.0, ((20, 110), (90, 170), (150, 240)))
    draw.distractors(img, rng, int(rng.integers(0, 3)), int(rng.integers(0, 2)), int(rng.integers(0, 3)), 1.0)
    size = side * rng.uniform(0.4, 0.7)
    poly, _lo, _hi = draw.shape_outline(cls, size, rng)
    c = np.full(2, side / 2) + rng.uniform(-0.08, 0.08, 2) * side
    lo, hi = int(side * 0.3), int(side * 0.7)
    color = draw.contrasting_color(rng, float(img[lo:hi, lo:hi].mean()))
    draw.draw_shape(img, cls, poly, c, size, color, rng)
    return draw.finish(img, rng), cls


def build_shapes_cls(
    root: str | os.PathLike,
    n_train: int = 600,
    n_val: int = 120,
    imgsz: int = 128,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Build the classification set (classes :data:`SHAPES_NAMES`, balanced by construction).

    Args:
        root: Output directory; ``yolo train task=classify data=root``.
        n_train: Number of training images (>= 1; >= 6 fills every class folder).
        n_val: Number of validation images.
        imgsz: Square image side in pixels (>= 64).
        seed: Base seed; same seed gives byte-identical files.
        workers: Rendering threads, None for min(4, usable cores); does not change the output.

    Returns:
        The absolute dataset root.
    """
    return build_dataset("shapes-cls", root, n_train, n_val, imgsz, seed, workers, render_cls, {},
                         layout=ClassFolderLayout())
