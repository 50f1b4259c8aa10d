"""Scene pieces the context tasks share: the low-saturation background and identical grey target squares.

Targets all look the same (a grey square, up to ~10 deg rotation, luma contrasting with the local background), so
a detector localises them from their own pixels but can name them only from somewhere else in the image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from . import draw

Accept = Callable[[tuple[float, float, float, float], np.ndarray], bool]
Render = Callable[[np.random.Generator, int, int], tuple]


class NoLayout(RuntimeError):
    """A random layout left no room for the targets a task needs; :func:`retried` draws a new one."""


def retried(render: Render, attempts: int = 10) -> Render:
    """Wrap a renderer so a :class:`NoLayout` draws a fresh layout from the same generator (still deterministic)."""

    @functools.wraps(render)
    def wrapper(rng: np.random.Generator, side: int, index: int) -> tuple:
        for _ in range(attempts - 1):
            try:
                return render(rng, side, index)
            except NoLayout:
                continue
        return render(rng, side, index)  # the last attempt's NoLayout (a RuntimeError) reaches the caller

    return wrapper


def context_background(rng: np.random.Generator, side: int) -> np.ndarray:
    """Dark or bright low-saturation textured field with grey clutter (float32 BGR workspace buffer)."""
    img = draw.background(rng, side, 0.12, ((25, 85), (170, 230)))
    draw.distractors(img, rng, int(rng.integers(0, 4)), int(rng.integers(0, 3)), int(rng.integers(0, 4)), 0.12)
    return img


def square_at(rng: np.random.Generator, side: int, size_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A random square polygon (relative to its centre) and a centre keeping it inside the image."""
    h = side * rng.uniform(*size_range) / 2
    poly = np.array([(-h, -h), (h, -h), (h, h), (-h, h)]) @ draw.rot(rng.uniform(-0.17, 0.17)).T
    lo, hi = poly.min(0), poly.max(0)
    return poly, rng.uniform(-lo, side - hi)


def box_of(poly: np.ndarray, c: np.ndarray) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) of a polygon placed at centre ``c``."""
    lo, hi = poly.min(0) + c, poly.max(0) + c
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def gap(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean gap between two (x1, y1, x2, y2) boxes (0 if they touch or overlap)."""
    dx = max(a[0] - b[2], b[0] - a[2], 0.0)
    dy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return math.hypot(dx, dy)


def place_squares(
    img: np.ndarray,
    rng: np.random.Generator,
    n: int,
    size_range: tuple[float, float],
    taken: list[tuple[float, float, float, float]],
    accept: Accept | None = None,
    tries: int = 300,
) -> list[tuple[tuple[float, float, float, float], np.ndarray]]:
    """Draw up to ``n`` grey squares, each >= 2 % of the side from every ``taken`` box; ``taken`` grows with each.

    Args:
        img: Float32 BGR image to draw on.
        rng: Per-image generator.
        n: Wanted number of squares.
        size_range: Side as a fraction of the image side.
        taken: Boxes every square keeps clear of (cue objects, earlier squares); each drawn square is appended.
        accept: Extra rule ``accept(box, centre)`` (it may append boxes it reserves to ``taken``); refusals retry.
        tries: Placement attempts in all.

    Returns:
        (box, centre) of each drawn square, in drawing order.
    """
    side = img.shape[0]
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY, dst=draw.workspace(side)["plane"])
    out: list[tuple[tuple[float, float, float, float], np.ndarray]] = []
    for _ in range(tries):
        if len(out) == n:
            break
        poly, c = square_at(rng, side, size_range)
        box = box_of(poly, c)
        if any(gap(box, t) < 0.02 * side for t in taken):
            continue
        if accept is not None and not accept(box, c):
            continue
        x1, y1, x2, y2 = draw.pixel_box(box, side)
        g = draw.contrasting_color(rng, float(gray[y1:y2, x1:x2].mean()), max_sat=0.0, min_diff=50.0)
        cv2.fillPoly(img, [draw.pts(poly + c)], g, cv2.LINE_AA, draw.SHIFT)
        taken.append(box)
        out.append((box, c))
    return out


def disc_box(c: np.ndarray, r: float) -> tuple[float, float, float, float]:
    """Bounding box of a disc."""
    return float(c[0] - r), float(c[1] - r), float(c[0] + r), float(c[1] + r)


def draw_disc(img: np.ndarray, c: np.ndarray, r: float, color: Sequence[int]) -> None:
    """Filled anti-aliased disc."""
    color = tuple(int(v) for v in color)
    cv2.circle(img, tuple(draw.pts(c)[0, 0]), int(r * draw.SCALE), color, -1, cv2.LINE_AA, draw.SHIFT)


def spread_points(
    rng: np.random.Generator, side: int, n: int, margin: float, min_dist: float, tries: int = 500
) -> np.ndarray:
    """``n`` random points at least ``margin`` from the edges and ``min_dist`` apart (pixels); raises if impossible."""
    out: list[np.ndarray] = []
    for _ in range(tries):
        p = rng.uniform(margin, side - margin, 2)
        if all(np.hypot(*(p - q)) >= min_dist for q in out):
            out.append(p)
            if len(out) == n:
                return np.array(out)
    raise NoLayout(f"could not place {n} points {min_dist:.0f} px apart in a {side} px image")
