"""The keypoint set: pointed shapes with a left corner, a right corner and an apex, ``kpt_shape [3, 3]``.

Labels are ``class cx cy w h  x y v  x y v  x y v`` (keypoints left, right, apex), normalised to [0, 1]; a keypoint
outside the image is ``0 0 0``, the box bounds the part of the shape inside the image. "Left" is a matter of
handedness, not of a mark: looking from the base towards the apex, the left corner is on the left. A rotation keeps
that, a mirror swaps it, so a horizontally flipped image is labelled correctly by swapping left and right:
``flip_idx [1, 0, 2]``, what Ultralytics' RandomFlip applies (a drawn mark on one corner would instead move with the
mirror, and flip_idx would then have to be the identity).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from . import draw
from ._build import build_dataset, detect_lines
from .instances import LinesLayout, clip_polygon, place_disjoint

POSE_NAMES: tuple[str, ...] = ("triangle", "arrow")
KPT_NAMES: tuple[str, ...] = ("left", "right", "apex")
KPT_SHAPE: tuple[int, int] = (len(KPT_NAMES), 3)  # x, y, visibility
FLIP_IDX: tuple[int, ...] = (1, 0, 2)  # a mirror swaps left and right, keeps the apex


def pointed_shape(cls: int, size: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A randomly rotated shape of height ``size`` px around 0: (outline polygon, keypoints left, right, apex).

    An isosceles triangle (class 0) or an arrowhead with a notch in its base (class 1), apex angle 22-39 deg so
    the apex is never in doubt. Upright, the apex points up (-y) and the left corner has the smaller x.
    """
    h, w = size / 2, size * rng.uniform(0.2, 0.35)
    apex, right, left = (0.0, -h), (w, h), (-w, h)
    poly = [apex, right, left] if cls == 0 else [apex, right, (0.0, h - size * rng.uniform(0.35, 0.55)), left]
    turn = draw.rot(rng.uniform(0, 2 * math.pi)).T  # a rotation (det +1): left stays left
    return np.array(poly) @ turn, np.array([left, right, apex]) @ turn


def handedness(kpts: np.ndarray) -> float:
    """Sign of the cross product (apex - base middle) x (left - base middle) in image axes (y down): < 0 upright.

    Negative for every label this set writes; a mirrored label is positive until flip_idx swaps its corners.
    """
    left, right, apex = kpts[:, :2]
    mid = (left + right) / 2
    d, e = apex - mid, left - mid
    return float(np.sign(d[0] * e[1] - d[1] * e[0]))


def pose_line(cls: int, outline: np.ndarray, kpts: np.ndarray, side: int) -> str:
    """``cls cx cy w h`` of the outline's part inside the image, then ``x y v`` per keypoint (``0 0 0`` outside)."""
    inside = clip_polygon(outline, side)
    box = detect_lines([(cls, *inside.min(0), *inside.max(0))], side)[0].rstrip("\n")
    seen = ((kpts >= 0) & (kpts <= side)).all(1)
    xyv = [f"{x / side:.6f} {y / side:.6f} 2" if s else "0 0 0" for (x, y), s in zip(kpts, seen)]
    return " ".join([box, *xyv]) + "\n"


def render_pose(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[str]]:
    """1-5 disjoint pointed shapes at 15-45 % of the side over clutter, some cut by the border."""
    img = draw.background(rng, side, 1.0, ((20, 110), (90, 170), (150, 240)))
    draw.distractors(img, rng, int(rng.integers(0, 5)), int(rng.integers(0, 3)), int(rng.integers(0, 5)), 1.0)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    taken = np.zeros((side, side), np.uint8)
    lines = []
    for _ in range(int(rng.integers(1, 6))):
        cls = int(rng.integers(len(POSE_NAMES)))
        size = side * rng.uniform(0.15, 0.45)
        poly, kpts = pointed_shape(cls, size, rng)
        c = place_disjoint(rng, poly, taken, tries=30)
        if c is None:
            continue
        color = draw.contrasting_color_under(rng, gray, (*(poly.min(0) + c), *(poly.max(0) + c)))
        draw.draw_shape(img, cls, poly, c, size, color, rng)  # a polygon: filled, sometimes outlined
        lines.append(pose_line(cls, poly + c, kpts + c, side))
    if not lines:
        raise RuntimeError("pose renderer placed no object")
    return draw.finish(img, rng), lines


def pose_yaml() -> str:
    """The data-YAML keys a pose set needs beside its names (``kpt_names``: per class, for plots and exports)."""
    names = "".join(f"  {i}: [{', '.join(KPT_NAMES)}]\n" for i in range(len(POSE_NAMES)))
    return f"kpt_shape: {list(KPT_SHAPE)}\nflip_idx: {list(FLIP_IDX)}\nkpt_names:\n{names}"


def build_shapes_pose(
    root: str | os.PathLike,
    n_train: int = 600,
    n_val: int = 120,
    imgsz: int = 320,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Build the keypoint set (classes :data:`POSE_NAMES`, keypoints :data:`KPT_NAMES`) with ``root/data.yaml``.

    Args:
        root: Output directory (the ``yaml["path"]`` Ultralytics passes from ``attn-shapes-pose.yaml``).
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Square image side in pixels (>= 64).
        seed: Base seed; same seed gives byte-identical files.
        workers: Rendering threads, None for min(4, usable cores); does not change the output.

    Returns:
        The absolute dataset root.
    """
    return build_dataset("shapes-pose", root, n_train, n_val, imgsz, seed, workers, render_pose, {}, POSE_NAMES,
                         layout=LinesLayout(), yaml_extra=pose_yaml())
