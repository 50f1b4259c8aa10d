"""Drawing primitives shared by the generators: backgrounds, clutter, shapes, colours, box geometry.

Everything draws with OpenCV in 1/16 px fixed point (``shift=SHIFT``) so boxes match pixels closely, and takes
its randomness from the caller's per-image generator, so output depends only on the seed.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence

import cv2
import numpy as np

SHIFT = 4  # cv2 sub-pixel bits
SCALE = 1 << SHIFT

# The six shape classes every generator draws from (index = class id of the neutral shapes set).
SHAPES_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")


def pts(xy: np.ndarray) -> np.ndarray:
    """Float pixel coords -> int32 fixed-point polygon for cv2 drawing with ``shift=SHIFT``."""
    return np.round(np.asarray(xy, np.float64) * SCALE).astype(np.int32).reshape(-1, 1, 2)


@functools.lru_cache(maxsize=4)
def _noise_tile(side: int) -> np.ndarray:
    """Fixed standard-normal tile larger than the image; fresh per-image noise was most of the runtime."""
    t = np.random.default_rng(0x5EED).standard_normal((side + 256, side + 256, 3), dtype=np.float32)
    t.flags.writeable = False  # shared between threads and images
    return t


def noise(rng: np.random.Generator, side: int) -> np.ndarray:
    """A (side, side, 3) standard-normal view: a random crop of the fixed tile (257**2 distinct offsets)."""
    ox, oy = rng.integers(0, 257, 2)
    return _noise_tile(side)[oy : oy + side, ox : ox + side]


def hsv_to_bgr(h: float, s: float, v: float) -> tuple[int, int, int]:
    """HSV in [0, 1] -> BGR ints, without cv2 so the result is exact and cheap."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return int(round(b * 255)), int(round(g * 255)), int(round(r * 255))


def rot(a: float) -> np.ndarray:
    """2x2 rotation matrix."""
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def pixel_box(box: Sequence[float], side: int) -> tuple[int, int, int, int]:
    """Integer pixel slice bounds covering a float box, clipped to the image."""
    return max(int(box[0]), 0), max(int(box[1]), 0), min(math.ceil(box[2]), side), min(math.ceil(box[3]), side)


def luma(bgr: Sequence[float]) -> float:
    """Rec. 601 luma of a BGR colour."""
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


def inter(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection area of two (x1, y1, x2, y2) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def area(a: Sequence[float]) -> float:
    """Area of an (x1, y1, x2, y2) box."""
    return (a[2] - a[0]) * (a[3] - a[1])


_local = threading.local()


def workspace(side: int) -> dict[str, np.ndarray]:
    """Per-thread reusable image buffers.

    Fresh ~1 MB arrays per image cost more in page faults than the rendering itself in sandboxed kernels, so
    every full-size buffer is allocated once per thread and overwritten.
    """
    ws = getattr(_local, "ws", None)
    if ws is None or ws["img"].shape[0] != side:
        ws = _local.ws = {
            "img": np.empty((side, side, 3), np.float32),
            "tmp": np.empty((side, side, 3), np.float32),
            "plane": np.empty((side, side), np.float32),
            "u8": np.empty((side, side, 3), np.uint8),
        }
    return ws


def background(
    rng: np.random.Generator, side: int, max_sat: float, value_bands: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Smooth colour field + optional stripes + grain, as float32 BGR in the thread's workspace.

    Args:
        rng: Per-image generator.
        side: Image side in pixels.
        max_sat: Upper bound on the field's HSV saturation (low where colour must stay a unique cue).
        value_bands: Candidate (lo, hi) brightness ranges; one is picked per image.
    """
    ws = workspace(side)
    g = int(rng.integers(2, 7))
    lo, hi = value_bands[int(rng.integers(len(value_bands)))]
    v0 = rng.uniform(lo, hi)
    hue = rng.uniform(0, 1) + rng.uniform(-0.08, 0.08, (g, g))
    sat = rng.uniform(0, max_sat) * rng.uniform(0.5, 1.0, (g, g))
    val = np.clip(v0 + rng.uniform(-25, 25, (g, g)), 0, 255) / 255.0
    grid = np.array(
        [[hsv_to_bgr(hue[i, j] % 1.0, sat[i, j], val[i, j]) for j in range(g)] for i in range(g)], np.float32
    )
    # Cubic to 32 px then linear: same smooth field as one cubic resize at ~1/10 of the cost.
    small = cv2.resize(grid, (32, 32), interpolation=cv2.INTER_CUBIC)
    img = cv2.resize(small, (side, side), dst=ws["img"], interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.4:  # periodic texture: a classic false-positive source for small-object detectors
        theta, period = rng.uniform(0, math.pi), rng.uniform(4, side / 4)
        r = np.arange(side, dtype=np.float32) * np.float32(2 * math.pi / period)
        st = np.add(r[None, :] * np.float32(math.cos(theta)), r[:, None] * np.float32(math.sin(theta)), out=ws["plane"])
        np.sin(st, out=st)
        st *= np.float32(rng.uniform(4, 18))
        img += st[..., None]
    return cv2.scaleAdd(noise(rng, side), float(rng.uniform(2, 14)), img, dst=img)


def finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optional blur + sensor noise, then round and clip to uint8 (a workspace buffer: encode before reuse)."""
    ws = workspace(img.shape[0])
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0, dst=ws["tmp"] if img is ws["img"] else ws["img"])
    sigma = rng.uniform(0, 6)
    if sigma > 0.5:
        img = cv2.scaleAdd(noise(rng, img.shape[0]), float(sigma), img, dst=img)
    img += np.float32(0.5)  # +0.5 then truncation == round half up
    np.clip(img, 0, 255, out=img)
    np.copyto(ws["u8"], img, casting="unsafe")
    return ws["u8"]


def random_color(rng: np.random.Generator, max_sat: float = 1.0) -> tuple[int, int, int]:
    """Uniform hue, saturation up to ``max_sat``, value in [0.05, 1]."""
    return hsv_to_bgr(rng.uniform(0, 1), rng.uniform(0, max_sat), rng.uniform(0.05, 1.0))


def contrasting_color(
    rng: np.random.Generator, bg_luma: float, max_sat: float = 1.0, min_diff: float = 55.0
) -> tuple[int, int, int]:
    """Random colour whose luma differs from the local background, so every label is actually visible."""
    c = random_color(rng, max_sat)
    for _ in range(12):
        if abs(luma(c) - bg_luma) >= min_diff:
            return c
        c = random_color(rng, max_sat)
    v = 0.95 if bg_luma < 128 else 0.12  # fall back to the far end of the brightness range
    return hsv_to_bgr(rng.uniform(0, 1), rng.uniform(0, max_sat), v)


def contrasting_color_under(
    rng: np.random.Generator, gray: np.ndarray, box: Sequence[float]
) -> tuple[int, int, int]:
    """:func:`contrasting_color` against the mean of ``gray`` (the image's grey plane) under ``box`` (pixel xyxy,
    clipped to the image; mid-grey where nothing of it is inside)."""
    x1, y1, x2, y2 = pixel_box(box, gray.shape[0])
    return contrasting_color(rng, float(gray[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else 128.0)


def distractors(
    img: np.ndarray,
    rng: np.random.Generator,
    n_lines: int,
    n_scribbles: int,
    n_blobs: int,
    max_sat: float,
    max_thick: int = 3,
) -> None:
    """Draw unlabelled clutter: straight lines, random-walk scribbles and elongated ellipses.

    Ellipses are kept at aspect >= 3 and scribbles open so none can be mistaken for a labelled class.
    """
    side = img.shape[0]
    for _ in range(n_lines):
        p = pts(rng.uniform(-0.1 * side, 1.1 * side, (2, 2)))
        color, thick = random_color(rng, max_sat), int(rng.integers(1, max_thick + 1))
        cv2.line(img, tuple(p[0, 0]), tuple(p[1, 0]), color, thick, cv2.LINE_AA, SHIFT)
    for _ in range(n_scribbles):
        n = int(rng.integers(4, 10))
        steps = rng.normal(0, side * 0.06, (n, 2))
        xy = np.cumsum(steps, 0) + rng.uniform(0, side, (1, 2))
        color, thick = random_color(rng, max_sat), int(rng.integers(1, max_thick + 1))
        cv2.polylines(img, [pts(xy)], False, color, thick, cv2.LINE_AA, SHIFT)
    for _ in range(n_blobs):
        a = rng.uniform(0.03, 0.15) * side
        b = a / rng.uniform(3, 8)
        c = pts(rng.uniform(0, side, 2))[0, 0]
        axes = (int(a * SCALE), max(int(b * SCALE), SCALE))
        angle, color = float(rng.uniform(0, 180)), random_color(rng, max_sat)
        cv2.ellipse(img, tuple(c), axes, angle, 0, 360, color, -1, cv2.LINE_AA, SHIFT)


def unit_polygon(cls: int, rng: np.random.Generator) -> np.ndarray | None:
    """Vertices (radius ~1, centred at 0) of polygonal :data:`SHAPES_NAMES` classes; None for circle and ring."""
    if cls == 1:  # square
        t = np.arange(4) * (math.pi / 2) + math.pi / 4
        return np.stack([np.cos(t), np.sin(t)], 1)
    if cls == 2:  # equilateral triangle
        t = np.arange(3) * (2 * math.pi / 3) - math.pi / 2
        return np.stack([np.cos(t), np.sin(t)], 1)
    if cls == 3:  # five-point star
        t = np.arange(10) * (math.pi / 5) - math.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        return np.stack([r * np.cos(t), r * np.sin(t)], 1)
    if cls == 4:  # plus-shaped cross
        w = rng.uniform(0.25, 0.4)
        quarter = np.array([(-w, -1), (w, -1), (w, -w)])  # one arm's outline; the other three are rotations
        return np.concatenate([quarter @ rot(k * math.pi / 2).T for k in range(4)])
    return None


def shape_outline(cls: int, size: float, rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """A randomly rotated shape of class ``cls`` whose longest box side is ``size`` px, centred at 0.

    Returns:
        (polygon or None for round classes, box low corner, box high corner), all relative to the centre.
    """
    poly = unit_polygon(cls, rng)
    if poly is None:
        return None, np.full(2, -size / 2), np.full(2, size / 2)
    poly = poly @ rot(rng.uniform(0, 2 * math.pi)).T
    poly = poly / (poly.max(0) - poly.min(0)).max() * size
    return poly, poly.min(0), poly.max(0)


def circle_points(c: np.ndarray, r: float, n: int = 64) -> np.ndarray:
    """``n`` points on a circle, counter-clockwise from angle 0 (within 0.12 % of r of the true circle at n=64)."""
    t = np.arange(n) * (2 * math.pi / n)
    return np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], 1)


def draw_shape(
    img: np.ndarray,
    cls: int,
    poly: np.ndarray | None,
    c: np.ndarray,
    size: float,
    color: tuple[int, int, int],
    rng: np.random.Generator,
    outline_p: float = 0.3,
) -> list[np.ndarray]:
    """Draw a :func:`shape_outline` result at centre ``c``; polygons get an odd-coloured outline with ``outline_p``.

    Returns:
        The boundary of the filled region in pixels (the outline stroke, ~1 px, not included): ``[outer]``, or
        ``[outer, hole]`` for the ring; circles at the radius and centre cv2 actually drew, in fixed point.
    """
    if poly is not None:
        cv2.fillPoly(img, [pts(poly + c)], color, cv2.LINE_AA, SHIFT)
        if rng.random() < outline_p:  # colour alone should not define a shape
            cv2.polylines(img, [pts(poly + c)], True, random_color(rng), 1, cv2.LINE_AA, SHIFT)
        return [pts(poly + c).reshape(-1, 2) / SCALE]
    centre = pts(c)[0, 0]
    if cls == 0:  # circle
        r = int(size / 2 * SCALE)
        cv2.circle(img, tuple(centre), r, color, -1, cv2.LINE_AA, SHIFT)
        return [circle_points(centre / SCALE, r / SCALE)]
    # ring: stroke centred on r_mid so the outer edge sits on the box
    t = max(2, round(size / 2 * rng.uniform(0.25, 0.45)))
    r = int((size - t) / 2 * SCALE)
    cv2.circle(img, tuple(centre), r, color, t, cv2.LINE_AA, SHIFT)
    half = (t + 1) // 2 + 0.5  # how far cv2's anti-aliased stroke of width t reaches either side (not t / 2)
    return [circle_points(centre / SCALE, r / SCALE + half), circle_points(centre / SCALE, r / SCALE - half)]
