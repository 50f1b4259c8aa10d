"""The salient-cue context set: identical grey squares named only by the colour of a far corner disc."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from . import draw
from ._build import Box, build_dataset

CONTEXT_NAMES: tuple[str, ...] = ("cue_red", "cue_green", "cue_blue", "cue_yellow")
# Fully saturated so no desaturated background/distractor pixel can mimic a cue.
CONTEXT_CUE_BGR: tuple[tuple[int, int, int], ...] = ((40, 40, 225), (40, 200, 40), (225, 70, 30), (30, 215, 230))

# Ultralytics train() overrides that keep the context cue in the image and tied to its own objects:
# mosaic would paste other images' cues beside an object, zoom/shift can crop the corner cue away.
CONTEXT_TRAIN_OVERRIDES: dict[str, float] = {"mosaic": 0.0, "scale": 0.0, "translate": 0.0}

# Context-cue geometry as fractions of the image side: disc radius, and gap between disc and image edges.
CONTEXT_CUE_RADIUS = 0.06
_CUE_MARGIN = 0.03


def context_cue_center(corner: int, side: int) -> tuple[float, float]:
    """Pixel centre of the cue disc in ``corner`` (0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left).

    Args:
        corner: Corner index in 0..3.
        side: Image side in pixels.
    """
    if corner not in (0, 1, 2, 3):
        raise ValueError(f"corner must be 0..3, got {corner!r}")
    d = (_CUE_MARGIN + CONTEXT_CUE_RADIUS) * side
    x = d if corner in (0, 3) else side - d
    y = d if corner in (0, 1) else side - d
    return x, y


def disc_gap(center: tuple[float, float], radius: float, box: Sequence[float]) -> float:
    """Euclidean gap between a disc and an (x1, y1, x2, y2) box (negative if they overlap)."""
    dx = max(box[0] - center[0], 0.0, center[0] - box[2])
    dy = max(box[1] - center[1], 0.0, center[1] - box[3])
    return math.hypot(dx, dy) - radius


def render_context(rng: np.random.Generator, side: int, index: int, min_gap: float) -> tuple[np.ndarray, list[Box]]:
    """One context image (uint8 BGR, workspace-owned) and its pixel boxes; see :func:`build_context`."""
    # Class cycles with the index so every class is equally frequent even in tiny builds.
    cls = index % len(CONTEXT_NAMES)
    img = draw.background(rng, side, 0.12, ((25, 85), (170, 230)))
    draw.distractors(img, rng, int(rng.integers(0, 4)), int(rng.integers(0, 3)), int(rng.integers(0, 4)), 0.12)

    # Cue disc in a random corner; grey decoy discs in the other three, so "a disc in a corner" says
    # nothing and only the cue's colour carries the class.
    cue_corner = int(rng.integers(4))
    radius = CONTEXT_CUE_RADIUS * side
    for k in range(4):
        if k == cue_corner:
            color = tuple(int(np.clip(v + rng.integers(-15, 16), 0, 255)) for v in CONTEXT_CUE_BGR[cls])
        else:
            g = int(rng.integers(60, 200))
            color = (g, g, g)
        center = tuple(draw.pts(context_cue_center(k, side))[0, 0])
        cv2.circle(img, center, int(radius * draw.SCALE), color, -1, cv2.LINE_AA, draw.SHIFT)

    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY, dst=draw.workspace(side)["plane"])
    cue_c = context_cue_center(cue_corner, side)
    boxes: list[Box] = []
    target = int(rng.integers(1, 7))
    for _try in range(200):
        if len(boxes) == target:
            break
        s = side * rng.uniform(0.06, 0.16)
        a = rng.uniform(-0.17, 0.17)  # up to ~10 degrees: still unmistakably a square
        h = s / 2
        poly = np.array([(-h, -h), (h, -h), (h, h), (-h, h)]) @ draw.rot(a).T
        lo, hi = poly.min(0), poly.max(0)
        c = rng.uniform(-lo, side - hi)
        box = (c[0] + lo[0], c[1] + lo[1], c[0] + hi[0], c[1] + hi[1])
        if disc_gap(cue_c, radius, box) < min_gap * side:
            continue
        if any(disc_gap(context_cue_center(k, side), radius, box) < 0.02 * side for k in range(4)):
            continue
        if any(draw.inter((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), b[1:]) > 0 for b in boxes):
            continue  # no overlap: boxes should be trivially easy, the difficulty is only the class
        x1, y1, x2, y2 = draw.pixel_box(box, side)
        g = draw.contrasting_color(rng, float(gray[y1:y2, x1:x2].mean()), max_sat=0.0, min_diff=50.0)
        cv2.fillPoly(img, [draw.pts(poly + c)], g, cv2.LINE_AA, draw.SHIFT)
        boxes.append((cls, *box))
    if not boxes:
        raise RuntimeError(f"could not place any object {min_gap=} away from the cue; lower min_gap")
    return draw.finish(img, rng), boxes


def check_min_gap(min_gap: object) -> float:
    """``min_gap`` as a float in [0, 0.5], else a ValueError naming it."""
    if isinstance(min_gap, bool) or not isinstance(min_gap, (int, float)) or not 0.0 <= min_gap <= 0.5:
        raise ValueError(f"build_context: min_gap must be a number in [0, 0.5], got {min_gap!r}")
    return float(min_gap)


def build_context(
    root: str | os.PathLike,
    n_train: int = 600,
    n_val: int = 120,
    imgsz: int = 320,
    seed: int = 0,
    min_gap: float = 0.4,
    workers: int | None = None,
) -> Path:
    """Build the context dataset, where an object's class is set by a distant image-level cue.

    Design: every object is an identical-looking grey square (6-16 % of the side, up to ~10 deg
    rotation, 1-6 per image, never overlapping), on a low-saturation textured background with grey
    clutter, so boxes are easy to find. Each image has one class (cycled over the index, so classes
    are balanced) shown only by the colour of a cue disc (diameter 12 % of the side) in a random
    corner: red, green, blue, yellow -> :data:`CONTEXT_NAMES`. The other three corners hold grey
    decoy discs, so only the cue's colour, not its presence, is informative, and no other pixel in
    the image is saturated. Every box keeps a Euclidean gap of at least ``min_gap * imgsz`` from the
    cue disc (128 px at the defaults), so a detector whose receptive field around the object is
    smaller than that can localise but not classify; it needs long-range (global) context.
    Train with :data:`CONTEXT_TRAIN_OVERRIDES` (no mosaic, zoom or shift), which would otherwise
    crop the cue or pair objects with another image's cue. Writes ``root/data.yaml``.

    Args:
        root: Output directory (str or Path, e.g. the ``yaml["path"]`` Ultralytics passes).
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Square image side in pixels (>= 64).
        seed: Base seed; same seed gives byte-identical files.
        min_gap: Minimum cue-to-box gap as a fraction of the image side, in [0, 0.5].
        workers: Rendering threads, None for min(4, usable cores); does not change the output.

    Returns:
        The absolute dataset root.
    """
    min_gap = check_min_gap(min_gap)

    def render(rng: np.random.Generator, side: int, index: int) -> tuple[np.ndarray, list[Box]]:
        return render_context(rng, side, index, min_gap)

    extra = {"min_gap": min_gap}
    return build_dataset("context", root, n_train, n_val, imgsz, seed, workers, render, extra, CONTEXT_NAMES)
