"""What the instance-level sets (segment, pose) share: polygon clipping, disjoint placement, label-line files.

Objects may reach past the image border (a label then describes the part inside), but never touch one another:
each instance owns every pixel inside its outline, so no mask claims a pixel another object covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from . import draw
from ._build import DetectLayout


class LinesLayout(DetectLayout):
    """DetectLayout's folders; the label is the finished list of label lines (normalised by the renderer)."""

    def write(self, root: Path, split: str, stem: str, jpeg: bytes, label: Sequence[str], side: int) -> None:
        (root / "images" / split / f"{stem}.jpg").write_bytes(jpeg)
        (root / "labels" / split / f"{stem}.txt").write_text("".join(label))


def clip_polygon(poly: np.ndarray, side: float) -> np.ndarray:
    """Sutherland-Hodgman: the part of polygon ``poly`` (N, 2) inside the square [0, side]^2, as a (M, 2) polygon.

    Exact for the convex window; a concave or holed (seamed) polygon comes back with zero-area edges along the
    border, which fill to the same pixels. M is 0 when nothing is inside.
    """
    out = np.asarray(poly, np.float64)
    for axis, keep_low in ((0, False), (0, True), (1, False), (1, True)):
        if len(out) == 0:
            break
        bound = side if not keep_low else 0.0
        inside = out[:, axis] <= bound if not keep_low else out[:, axis] >= bound
        if inside.all():
            continue  # nothing beyond this bound (the usual case): no edge to cut
        nxt, nxt_in = np.roll(out, -1, 0), np.roll(inside, -1)
        pieces = []
        for p, q, p_in, q_in in zip(out, nxt, inside, nxt_in):
            if p_in:
                pieces.append(p)
            if p_in != q_in:  # the edge crosses the bound: add the crossing point
                t = (bound - p[axis]) / (q[axis] - p[axis])
                pieces.append(p + t * (q - p))
        out = np.array(pieces).reshape(-1, 2)
    return out


def polygon_area(poly: np.ndarray) -> float:
    """Area of a simple polygon (shoelace); 0 for fewer than 3 points."""
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def place_disjoint(
    rng: np.random.Generator,
    outline: np.ndarray,
    taken: np.ndarray,
    min_inside: float = 0.6,
    tries: int = 8,
) -> np.ndarray | None:
    """A centre for ``outline`` (polygon around 0, pixels) where it touches no pixel of ``taken``, else None.

    The centre lies inside the image and at least ``min_inside`` of the outline's area lands inside it. ``taken``
    (uint8 side x side) is grown by the placed outline plus a 2 px margin, so anti-aliased edges never meet.
    """
    side = taken.shape[0]
    full = polygon_area(outline)
    for _ in range(tries):
        c = rng.uniform(0, side, 2)
        if polygon_area(clip_polygon(outline + c, side)) < min_inside * full:
            continue
        # Only the outline's box (+3 px) of the image is looked at: same answer, a fraction of the work.
        x0, y0 = np.floor(outline.min(0) + c - 3).clip(0, side).astype(int)
        x1, y1 = np.ceil(outline.max(0) + c + 3).clip(0, side).astype(int)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [draw.pts(outline + c - (x0, y0))], 1, cv2.LINE_8, draw.SHIFT)
        mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
        view = taken[y0:y1, x0:x1]
        if (mask & view).any():
            continue
        view |= mask
        return c
    return None

