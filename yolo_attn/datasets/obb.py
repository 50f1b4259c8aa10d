"""The oriented-box set: elongated bars and ellipses at any angle, labelled ``class x1 y1 x2 y2 x3 y3 x4 y4``.

Corners are the exact rotated rectangle each object is drawn in (cv2.boxPoints), normalised to [0, 1] like
DOTA-format labels Ultralytics' OBB dataset reads; objects do not overlap, so every box is fully visible.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from . import draw
from ._build import DetectLayout, build_dataset

OBB_NAMES: tuple[str, ...] = ("bar", "ellipse")


class OBBLayout(DetectLayout):
    """DetectLayout's folders; the label is a list of ``(class, 4x2 corner array in pixels)``."""

    def write(self, root: Path, split: str, stem: str, jpeg: bytes, label: list, side: int) -> None:
        (root / "images" / split / f"{stem}.jpg").write_bytes(jpeg)
        lines = [f"{c} " + " ".join(f"{v:.6f}" for v in (corners / side).clip(0, 1).ravel()) + "\n"
                 for c, corners in label]
        (root / "labels" / split / f"{stem}.txt").write_text("".join(lines))


def render_obb(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list]:
    """1-4 non-overlapping rotated objects, long side 25-60 % of the image, aspect 2.5-5."""
    img = draw.background(rng, side, 1.0, ((20, 110), (90, 170), (150, 240)))
    objs, masks = [], np.zeros((side, side), np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        cls = int(rng.integers(len(OBB_NAMES)))
        long = side * rng.uniform(0.25, 0.6)
        rect = ((*rng.uniform(long / 2, side - long / 2, 2),), (long, long / rng.uniform(2.5, 5)), rng.uniform(0, 180))
        corners = cv2.boxPoints(rect)
        m = np.zeros_like(masks)
        cv2.fillPoly(m, [corners.round().astype(np.int32)], 1)
        if (m & masks).any():
            continue
        masks |= m
        color = draw.contrasting_color(rng, float(img[m > 0].mean()))
        if cls == 0:
            cv2.fillPoly(img, [draw.pts(corners)], color, cv2.LINE_AA, draw.SHIFT)
        else:
            cv2.ellipse(img, rect, color, -1, cv2.LINE_AA)
        objs.append((cls, corners.astype(np.float64)))
    if not objs:
        raise RuntimeError("obb renderer produced no objects")
    return draw.finish(img, rng), objs


def build_shapes_obb(root: str | os.PathLike, n_train: int = 600, n_val: int = 120, imgsz: int = 320,
                     seed: int = 0, workers: int | None = None) -> Path:
    """Build the OBB set (classes :data:`OBB_NAMES`) with ``root/data.yaml``; args as :func:`.build_shapes`."""
    return build_dataset("shapes-obb", root, n_train, n_val, imgsz, seed, workers, render_obb, {}, OBB_NAMES,
                         layout=OBBLayout())
