"""The instance-segmentation set: the six shapes, each labelled ``class x1 y1 x2 y2 ...`` by its exact outline.

The polygon is the boundary cv2 filled (polygon vertices; circles at the drawn centre and radius, 64 points),
clipped to the image and normalised to [0, 1], the format Ultralytics' segment datasets read. Objects never touch
(:func:`.instances.place_disjoint`), so each polygon covers only its own object's pixels. A ring's hole is cut out
by a seam, as Ultralytics joins multi-part masks: outer circle, a zero-width cut to the inner circle, inner circle
the other way round; filling it leaves the hole empty but for the one-pixel cut.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from . import draw
from ._build import build_dataset
from .draw import SHAPES_NAMES
from .instances import LinesLayout, clip_polygon, place_disjoint

SEG_NAMES: tuple[str, ...] = SHAPES_NAMES


def seamed(boundaries: list[np.ndarray]) -> np.ndarray:
    """One polygon for ``[outer]`` or ``[outer, hole]``: the hole joined by a zero-width cut from outer[0]."""
    if len(boundaries) == 1:
        return boundaries[0]
    outer, hole = boundaries
    # hole[0], then the hole the other way round, back to hole[0]; the polygon's closing edge returns to outer[0].
    return np.concatenate([outer, outer[:1], hole[:1], hole[:0:-1], hole[:1]])


def segment_line(cls: int, polygon: np.ndarray, side: int) -> str:
    """``cls x1 y1 ...``: the polygon clipped to the image, normalised to [0, 1]."""
    xy = (clip_polygon(polygon, side) / side).clip(0.0, 1.0)
    return f"{cls} " + " ".join(f"{v:.6f}" for v in xy.ravel()) + "\n"


def render_seg(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[str]]:
    """1-8 disjoint shapes at 8-45 % of the side (log-uniform) over clutter; see :func:`build_shapes_seg`."""
    img = draw.background(rng, side, 1.0, ((20, 110), (90, 170), (150, 240)))
    draw.distractors(img, rng, int(rng.integers(0, 5)), int(rng.integers(0, 3)), int(rng.integers(0, 5)), 1.0)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    taken = np.zeros((side, side), np.uint8)
    lines = []
    for _ in range(int(rng.integers(1, 9))):
        cls = int(rng.integers(len(SEG_NAMES)))
        size = side * math.exp(rng.uniform(math.log(0.08), math.log(0.45)))
        poly, _lo, _hi = draw.shape_outline(cls, size, rng)
        rough = poly if poly is not None else draw.circle_points(np.zeros(2), size / 2, 32)
        c = place_disjoint(rng, rough, taken, tries=30)
        if c is None:
            continue
        color = draw.contrasting_color_under(rng, gray, (*(rough.min(0) + c), *(rough.max(0) + c)))
        boundaries = draw.draw_shape(img, cls, poly, c, size, color, rng, outline_p=0.0)
        lines.append(segment_line(cls, seamed(boundaries), side))
    if not lines:
        raise RuntimeError("segment renderer placed no object")
    return draw.finish(img, rng), lines


def build_shapes_seg(
    root: str | os.PathLike,
    n_train: int = 600,
    n_val: int = 120,
    imgsz: int = 320,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Build the segmentation set (classes :data:`SEG_NAMES`) with ``root/data.yaml``.

    Args:
        root: Output directory (the ``yaml["path"]`` Ultralytics passes from ``attn-shapes-seg.yaml``).
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Square image side in pixels (>= 64).
        seed: Base seed; same seed gives byte-identical files.
        workers: Rendering threads, None for min(4, usable cores); does not change the output.

    Returns:
        The absolute dataset root.
    """
    return build_dataset("shapes-seg", root, n_train, n_val, imgsz, seed, workers, render_seg, {}, SEG_NAMES,
                         layout=LinesLayout())
