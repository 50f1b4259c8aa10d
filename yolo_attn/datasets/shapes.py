"""The neutral shapes set: six shape classes in clutter; every class can be named from the object's own pixels."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from . import draw
from ._build import Box, build_dataset
from .draw import SHAPES_NAMES


def place_shapes(
    img: np.ndarray,
    rng: np.random.Generator,
    n: int,
    size_range: tuple[float, float],
    max_hidden: float = 0.4,
) -> list[Box]:
    """Draw up to ``n`` random shapes (log-uniform size, fraction of the side) and return their boxes.

    Later objects are drawn on top; a placement is retried (8 times, then dropped) if it would leave more than
    ``max_hidden`` of an earlier object's box covered. Colours contrast with the local background.
    """
    side = img.shape[0]
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY, dst=draw.workspace(side)["plane"])
    boxes: list[Box] = []
    hidden: list[float] = []  # area of each earlier box already covered by later ones (upper bound)
    lo_s, hi_s = math.log(size_range[0]), math.log(size_range[1])
    for _ in range(n):
        cls = int(rng.integers(len(SHAPES_NAMES)))
        size = side * math.exp(rng.uniform(lo_s, hi_s))  # log-uniform: as many small as large
        poly, lo, hi = draw.shape_outline(cls, size, rng)
        for _try in range(8):
            c = rng.uniform(-lo, side - hi)  # keep the whole object inside the image
            box = (c[0] + lo[0], c[1] + lo[1], c[0] + hi[0], c[1] + hi[1])
            inters = [draw.inter(box, b[1:]) for b in boxes]
            if all(h + i <= max_hidden * draw.area(b[1:]) for h, i, b in zip(hidden, inters, boxes)):
                break
        else:
            continue
        hidden = [h + i for h, i in zip(hidden, inters)]
        color = draw.contrasting_color_under(rng, gray, box)
        draw.draw_shape(img, cls, poly, c, size, color, rng)
        boxes.append((cls, *box))
        hidden.append(0.0)
    return boxes


def render_shapes(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[Box]]:
    """One shapes image (uint8 BGR, workspace-owned) and its pixel boxes; see :func:`build_shapes`."""
    img = draw.background(rng, side, 1.0, ((20, 110), (90, 170), (150, 240)))
    draw.distractors(img, rng, int(rng.integers(0, 5)), int(rng.integers(0, 3)), int(rng.integers(0, 5)), 1.0)
    boxes = place_shapes(img, rng, int(rng.integers(1, 11)), (0.04, 0.40))
    if not boxes:  # the first object never collides, so this is unreachable; guard against silent empty labels
        raise RuntimeError("shape renderer produced no objects")
    # A few thin lines over the objects: mild occlusion that does not hide them.
    draw.distractors(img, rng, int(rng.integers(0, 3)), 0, 0, 1.0, max_thick=2)
    return draw.finish(img, rng), boxes


def render_crowd(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[Box]]:
    """Crowding and occlusion: 12-30 shapes at 5-18 % of the side, each up to ~55 % hidden by later ones."""
    img = draw.background(rng, side, 1.0, ((20, 110), (90, 170), (150, 240)))
    draw.distractors(img, rng, int(rng.integers(0, 4)), int(rng.integers(0, 2)), int(rng.integers(0, 3)), 1.0)
    boxes = place_shapes(img, rng, int(rng.integers(12, 31)), (0.05, 0.18), max_hidden=0.55)
    return draw.finish(img, rng), boxes


def render_small(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[Box]]:
    """Small objects in a large image: 4-24 shapes at 1.5-5 % of the side (10-32 px at 640 px) in clutter."""
    img = draw.background(rng, side, 1.0, ((20, 110), (90, 170), (150, 240)))
    draw.distractors(img, rng, int(rng.integers(2, 8)), int(rng.integers(0, 4)), int(rng.integers(0, 6)), 1.0, 2)
    boxes = place_shapes(img, rng, int(rng.integers(4, 25)), (0.015, 0.05), max_hidden=0.2)
    return draw.finish(img, rng), boxes


def build_shapes(
    root: str | os.PathLike,
    n_train: int = 600,
    n_val: int = 120,
    imgsz: int = 320,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Build the neutral multi-shape detection dataset (classes :data:`SHAPES_NAMES`).

    Each image has 1-10 objects of 6 classes with log-uniform size between 4 % and 40 % of the
    image side, random rotation and colour (contrasting with the local background), partial
    occlusion (each object stays at least ~60 % unoccluded), on a textured, noisy background with
    unlabelled distractor lines, scribbles and elongated blobs. The class is visible in the object
    itself, so local features suffice. Skips the build if ``root`` already holds it. Writes
    ``root/data.yaml``.

    Args:
        root: Output directory (str or Path, e.g. the ``yaml["path"]`` Ultralytics passes).
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Square image side in pixels (>= 64).
        seed: Base seed; same seed gives byte-identical files.
        workers: Rendering threads, None for min(4, usable cores); does not change the output.

    Returns:
        The absolute dataset root.
    """
    return build_dataset("shapes", root, n_train, n_val, imgsz, seed, workers, render_shapes, {}, SHAPES_NAMES)
