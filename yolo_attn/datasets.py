"""Deterministic, offline, code-generated detection datasets in YOLO format.

Two generators share one on-disk layout (``root/images/{train,val}/*.jpg`` and
``root/labels/{train,val}/*.txt`` with ``class cx cy w h`` normalised to [0, 1]):

* :func:`build_shapes`, a *neutral* benchmark. Six shape classes at 4-40 % of the
  image side, 1-10 per image, random colours and rotations, textured/noisy
  backgrounds, unlabelled distractor lines, scribbles and elongated blobs, and
  partial occlusion. Every class can be named from the object's own pixels, so
  nothing in it rewards global attention over convolution.
* :func:`build_context`, a *context* benchmark. Every object is the same grey
  square; its class is the colour of a cue disc in one image corner, far away
  from all objects. A detector with only local receptive fields finds the boxes
  but cannot name them. See :func:`build_context` for the design.

Images are rendered with numpy + OpenCV from a per-image seed derived from
``(seed, dataset, split, index)``, so output is byte-identical for a given seed
and OpenCV build regardless of thread count. A build is written into a sibling
temp directory and renamed into place only when complete, with a marker file
(``attn_dataset.json``) recording its parameters; a complete build with the
same parameters is skipped.

The packaged data YAMLs (``yolo_attn/configs/attn-shapes.yaml`` and
``attn-context.yaml``, see :func:`data_yaml`) call these builders from their
``download:`` snippet, so Ultralytics generates the data on first use.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "CONTEXT_CUE_BGR",
    "CONTEXT_CUE_RADIUS",
    "CONTEXT_NAMES",
    "CONTEXT_TRAIN_OVERRIDES",
    "SHAPES_NAMES",
    "build_context",
    "build_shapes",
    "context_cue_center",
    "data_yaml",
    "main",
]

SHAPES_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
CONTEXT_NAMES: tuple[str, ...] = ("cue_red", "cue_green", "cue_blue", "cue_yellow")
# Fully saturated so no desaturated background/distractor pixel can mimic a cue.
CONTEXT_CUE_BGR: tuple[tuple[int, int, int], ...] = ((40, 40, 225), (40, 200, 40), (225, 70, 30), (30, 215, 230))

# Ultralytics train() overrides that keep the context cue in the image and tied to its own objects:
# mosaic would paste other images' cues beside an object, zoom/shift can crop the corner cue away.
CONTEXT_TRAIN_OVERRIDES: dict[str, float] = {"mosaic": 0.0, "scale": 0.0, "translate": 0.0}

MARKER = "attn_dataset.json"
# Bump whenever rendering changes so stale builds are regenerated instead of silently reused.
_VERSION = 1
_JPEG_QUALITY = 90
_SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn in 1/16 px so boxes match pixels closely
_SCALE = 1 << _SHIFT

# Context-cue geometry as fractions of the image side: disc radius, and gap between disc and image edges.
CONTEXT_CUE_RADIUS = 0.06
_CUE_MARGIN = 0.03

Box = tuple[int, float, float, float, float]  # class, x1, y1, x2, y2 in pixels
Renderer = Callable[[np.random.Generator, int, int], tuple[np.ndarray, list[Box]]]


# --------------------------------------------------------------------------------------------- helpers
def _pts(xy: np.ndarray) -> np.ndarray:
    """Float pixel coords -> int32 fixed-point polygon for cv2 drawing with ``shift=_SHIFT``."""
    return np.round(np.asarray(xy, np.float64) * _SCALE).astype(np.int32).reshape(-1, 1, 2)


@functools.lru_cache(maxsize=4)
def _noise_tile(side: int) -> np.ndarray:
    """Fixed standard-normal tile larger than the image; fresh per-image noise was most of the runtime."""
    t = np.random.default_rng(0x5EED).standard_normal((side + 256, side + 256, 3), dtype=np.float32)
    t.flags.writeable = False  # shared between threads and images
    return t


def _noise(rng: np.random.Generator, side: int) -> np.ndarray:
    """A (side, side, 3) standard-normal view: a random crop of the fixed tile (257**2 distinct offsets)."""
    ox, oy = rng.integers(0, 257, 2)
    return _noise_tile(side)[oy : oy + side, ox : ox + side]


def _hsv_to_bgr(h: float, s: float, v: float) -> tuple[int, int, int]:
    """HSV in [0, 1] -> BGR ints, without cv2 so the result is exact and cheap."""
    r, g, b = _hsv_rgb(h, s, v)
    return int(round(b * 255)), int(round(g * 255)), int(round(r * 255))


def _hsv_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]


def _rot(a: float) -> np.ndarray:
    """2x2 rotation matrix."""
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _pixel_box(box: Sequence[float], side: int) -> tuple[int, int, int, int]:
    """Integer pixel slice bounds covering a float box, clipped to the image."""
    return max(int(box[0]), 0), max(int(box[1]), 0), min(math.ceil(box[2]), side), min(math.ceil(box[3]), side)


def _luma(bgr: Sequence[float]) -> float:
    return 0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2]


_local = threading.local()


def _workspace(side: int) -> dict[str, np.ndarray]:
    """Per-thread reusable image buffers.

    Fresh ~1 MB arrays per image cost more in page faults than the rendering itself (3x wall time in
    sandboxed kernels), so every full-size buffer is allocated once per thread and overwritten.
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


def _background(
    rng: np.random.Generator, side: int, max_sat: float, value_bands: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Smooth colour field + optional stripes + grain, as float32 BGR in the thread's workspace.

    Args:
        rng: Per-image generator.
        side: Image side in pixels.
        max_sat: Upper bound on the field's HSV saturation (low for the context set so cue colours stay unique).
        value_bands: Candidate (lo, hi) brightness ranges; one is picked per image.
    """
    ws = _workspace(side)
    g = int(rng.integers(2, 7))
    lo, hi = value_bands[int(rng.integers(len(value_bands)))]
    v0 = rng.uniform(lo, hi)
    hue = rng.uniform(0, 1) + rng.uniform(-0.08, 0.08, (g, g))
    sat = rng.uniform(0, max_sat) * rng.uniform(0.5, 1.0, (g, g))
    val = np.clip(v0 + rng.uniform(-25, 25, (g, g)), 0, 255) / 255.0
    grid = np.array(
        [[_hsv_to_bgr(hue[i, j] % 1.0, sat[i, j], val[i, j]) for j in range(g)] for i in range(g)], np.float32
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
    return cv2.scaleAdd(_noise(rng, side), float(rng.uniform(2, 14)), img, dst=img)


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Optional blur + sensor noise, then round and clip to uint8 (a workspace buffer: encode before reuse)."""
    ws = _workspace(img.shape[0])
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0, dst=ws["tmp"] if img is ws["img"] else ws["img"])
    sigma = rng.uniform(0, 6)
    if sigma > 0.5:
        img = cv2.scaleAdd(_noise(rng, img.shape[0]), float(sigma), img, dst=img)
    img += np.float32(0.5)  # +0.5 then truncation == round half up
    np.clip(img, 0, 255, out=img)
    np.copyto(ws["u8"], img, casting="unsafe")
    return ws["u8"]


def _random_color(rng: np.random.Generator, max_sat: float = 1.0) -> tuple[int, int, int]:
    return _hsv_to_bgr(rng.uniform(0, 1), rng.uniform(0, max_sat), rng.uniform(0.05, 1.0))


def _contrasting_color(
    rng: np.random.Generator, bg_luma: float, max_sat: float = 1.0, min_diff: float = 55.0
) -> tuple[int, int, int]:
    """Random colour whose luma differs from the local background, so every label is actually visible."""
    c = _random_color(rng, max_sat)
    for _ in range(12):
        if abs(_luma(c) - bg_luma) >= min_diff:
            return c
        c = _random_color(rng, max_sat)
    v = 0.95 if bg_luma < 128 else 0.12  # fall back to the far end of the brightness range
    return _hsv_to_bgr(rng.uniform(0, 1), rng.uniform(0, max_sat), v)


def _distractors(
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
        p = _pts(rng.uniform(-0.1 * side, 1.1 * side, (2, 2)))
        color, thick = _random_color(rng, max_sat), int(rng.integers(1, max_thick + 1))
        cv2.line(img, tuple(p[0, 0]), tuple(p[1, 0]), color, thick, cv2.LINE_AA, _SHIFT)
    for _ in range(n_scribbles):
        n = int(rng.integers(4, 10))
        steps = rng.normal(0, side * 0.06, (n, 2))
        pts = np.cumsum(steps, 0) + rng.uniform(0, side, (1, 2))
        color, thick = _random_color(rng, max_sat), int(rng.integers(1, max_thick + 1))
        cv2.polylines(img, [_pts(pts)], False, color, thick, cv2.LINE_AA, _SHIFT)
    for _ in range(n_blobs):
        a = rng.uniform(0.03, 0.15) * side
        b = a / rng.uniform(3, 8)
        c = _pts(rng.uniform(0, side, 2))[0, 0]
        axes = (int(a * _SCALE), max(int(b * _SCALE), _SCALE))
        angle, color = float(rng.uniform(0, 180)), _random_color(rng, max_sat)
        cv2.ellipse(img, tuple(c), axes, angle, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)


def _inter(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection area of two (x1, y1, x2, y2) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def _area(a: Sequence[float]) -> float:
    return (a[2] - a[0]) * (a[3] - a[1])


# ---------------------------------------------------------------------------------------------- shapes
def _unit_polygon(cls: int, rng: np.random.Generator) -> np.ndarray | None:
    """Vertices (radius ~1, centred at 0) of polygonal classes; None for round classes (circle, ring)."""
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
        return np.concatenate([quarter @ _rot(k * math.pi / 2).T for k in range(4)])
    return None


def _render_shapes(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[Box]]:
    """One shapes image (uint8 BGR, workspace-owned) and its pixel boxes; see :func:`build_shapes`."""
    img = _background(rng, side, 1.0, ((20, 110), (90, 170), (150, 240)))
    _distractors(img, rng, int(rng.integers(0, 5)), int(rng.integers(0, 3)), int(rng.integers(0, 5)), 1.0)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY, dst=_workspace(side)["plane"])

    boxes: list[Box] = []
    hidden: list[float] = []  # area of each earlier box already covered by later ones (upper bound)
    for _ in range(int(rng.integers(1, 11))):
        cls = int(rng.integers(len(SHAPES_NAMES)))
        size = side * math.exp(rng.uniform(math.log(0.04), math.log(0.40)))  # log-uniform: as many small as large
        poly = _unit_polygon(cls, rng)
        if poly is not None:
            poly = poly @ _rot(rng.uniform(0, 2 * math.pi)).T
            poly = poly / (poly.max(0) - poly.min(0)).max() * size  # longest bbox side == size
            lo, hi = poly.min(0), poly.max(0)
        else:
            lo, hi = np.full(2, -size / 2), np.full(2, size / 2)
        for _try in range(8):
            c = rng.uniform(-lo, side - hi)  # keep the whole object inside the image
            box = (c[0] + lo[0], c[1] + lo[1], c[0] + hi[0], c[1] + hi[1])
            # Later objects are drawn on top: cap how much of each earlier object ends up hidden.
            inters = [_inter(box, b[1:]) for b in boxes]
            if all(h + i <= 0.4 * _area(b[1:]) for h, i, b in zip(hidden, inters, boxes)):
                break
        else:
            continue
        hidden = [h + i for h, i in zip(hidden, inters)]
        x1, y1, x2, y2 = _pixel_box(box, side)
        color = _contrasting_color(rng, float(gray[y1:y2, x1:x2].mean()) if x2 > x1 and y2 > y1 else 128.0)
        if poly is not None:
            cv2.fillPoly(img, [_pts(poly + c)], color, cv2.LINE_AA, _SHIFT)
            if rng.random() < 0.3:  # occasional outline: colour alone should not define a shape
                cv2.polylines(img, [_pts(poly + c)], True, _random_color(rng), 1, cv2.LINE_AA, _SHIFT)
        elif cls == 0:  # circle
            cv2.circle(img, tuple(_pts(c)[0, 0]), int(size / 2 * _SCALE), color, -1, cv2.LINE_AA, _SHIFT)
        else:  # ring: stroke centred on r_mid so the outer edge sits on the box
            t = max(2, round(size / 2 * rng.uniform(0.25, 0.45)))
            cv2.circle(img, tuple(_pts(c)[0, 0]), int((size - t) / 2 * _SCALE), color, t, cv2.LINE_AA, _SHIFT)
        boxes.append((cls, *box))
        hidden.append(0.0)
    if not boxes:  # the first object never collides, so this is unreachable; guard against silent empty labels
        raise RuntimeError("shape renderer produced no objects")
    # A few thin lines over the objects: mild occlusion that does not hide them.
    _distractors(img, rng, int(rng.integers(0, 3)), 0, 0, 1.0, max_thick=2)
    return _finish(img, rng), boxes


# --------------------------------------------------------------------------------------------- context
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


def _disc_gap(center: tuple[float, float], radius: float, box: Sequence[float]) -> float:
    """Euclidean gap between a disc and an (x1, y1, x2, y2) box (negative if they overlap)."""
    dx = max(box[0] - center[0], 0.0, center[0] - box[2])
    dy = max(box[1] - center[1], 0.0, center[1] - box[3])
    return math.hypot(dx, dy) - radius


def _render_context(rng: np.random.Generator, side: int, index: int, min_gap: float) -> tuple[np.ndarray, list[Box]]:
    """One context image (uint8 BGR, workspace-owned) and its pixel boxes; see :func:`build_context`."""
    # Class cycles with the index so every class is equally frequent even in tiny builds.
    cls = index % len(CONTEXT_NAMES)
    img = _background(rng, side, 0.12, ((25, 85), (170, 230)))
    _distractors(img, rng, int(rng.integers(0, 4)), int(rng.integers(0, 3)), int(rng.integers(0, 4)), 0.12)

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
        center = tuple(_pts(context_cue_center(k, side))[0, 0])
        cv2.circle(img, center, int(radius * _SCALE), color, -1, cv2.LINE_AA, _SHIFT)

    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY, dst=_workspace(side)["plane"])
    cue_c = context_cue_center(cue_corner, side)
    boxes: list[Box] = []
    target = int(rng.integers(1, 7))
    for _try in range(200):
        if len(boxes) == target:
            break
        s = side * rng.uniform(0.06, 0.16)
        a = rng.uniform(-0.17, 0.17)  # up to ~10 degrees: still unmistakably a square
        h = s / 2
        poly = np.array([(-h, -h), (h, -h), (h, h), (-h, h)]) @ _rot(a).T
        lo, hi = poly.min(0), poly.max(0)
        c = rng.uniform(-lo, side - hi)
        box = (c[0] + lo[0], c[1] + lo[1], c[0] + hi[0], c[1] + hi[1])
        if _disc_gap(cue_c, radius, box) < min_gap * side:
            continue
        if any(_disc_gap(context_cue_center(k, side), radius, box) < 0.02 * side for k in range(4)):
            continue
        if any(_inter((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), b[1:]) > 0 for b in boxes):
            continue  # no overlap: boxes should be trivially easy, the difficulty is only the class
        x1, y1, x2, y2 = _pixel_box(box, side)
        g = _contrasting_color(rng, float(gray[y1:y2, x1:x2].mean()), max_sat=0.0, min_diff=50.0)
        cv2.fillPoly(img, [_pts(poly + c)], g, cv2.LINE_AA, _SHIFT)
        boxes.append((cls, *box))
    if not boxes:
        raise RuntimeError(f"could not place any object {min_gap=} away from the cue; lower min_gap")
    return _finish(img, rng), boxes


# ----------------------------------------------------------------------------------------------- build
def _write_labels(path: Path, boxes: list[Box], side: int) -> None:
    lines = []
    for cls, x1, y1, x2, y2 in boxes:
        x1, y1, x2, y2 = (min(max(v / side, 0.0), 1.0) for v in (x1, y1, x2, y2))
        lines.append(f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}\n")
    path.write_text("".join(lines))


def _read_marker(root: Path) -> dict | None:
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _check_int(name: str, value: object, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _build(
    kind: str,
    root: str | os.PathLike,
    n_train: int,
    n_val: int,
    imgsz: int,
    seed: int,
    workers: int | None,
    render: Renderer,
    extra: dict,
) -> Path:
    """Render a dataset into a temp sibling of ``root`` and rename it into place.

    Args:
        kind: Dataset name stored in the marker and mixed into the seed.
        root: Destination directory.
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Square image side in pixels.
        seed: Base seed.
        workers: Rendering threads (None: min(4, usable cores)). Output does not depend on it.
        render: ``render(rng, side, index) -> (uint8 BGR image, boxes)``.
        extra: Extra generator parameters recorded in the marker.
    """
    n_train, n_val = _check_int("n_train", n_train, 1), _check_int("n_val", n_val, 1)
    imgsz, seed = _check_int("imgsz", imgsz, 64), _check_int("seed", seed, 0)
    if workers is None:  # usable cores, not os.cpu_count(): containers and taskset often allow fewer
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(4, cores)
    workers = _check_int("workers", workers, 1)
    root = Path(root).expanduser().absolute()
    meta = dict(kind=kind, version=_VERSION, n_train=n_train, n_val=n_val, imgsz=imgsz, seed=seed, **extra)

    if root.exists():
        old = _read_marker(root)
        if old == meta:
            return root  # already complete with identical parameters
        if old is None and root.is_dir() and any(root.iterdir()):
            raise FileExistsError(f"{root} is not empty and not built by yolo_attn.datasets; refusing to overwrite it")
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a directory")

    root.parent.mkdir(parents=True, exist_ok=True)
    # Same filesystem as root so the final rename is atomic; the '.partial' name never looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private (0700); the dataset should be readable like any other
    try:
        for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
            (tmp / "images" / split).mkdir(parents=True)
            (tmp / "labels" / split).mkdir(parents=True)

            def job(i: int, split: str = split, split_id: int = split_id) -> None:
                # Per-image seed: results do not depend on thread scheduling or on n.
                rng = np.random.default_rng([seed, sum(map(ord, kind)), split_id, i])
                img, boxes = render(rng, imgsz, i)
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
                if not ok:
                    raise RuntimeError(f"JPEG encoding failed for {split} image {i}")
                (tmp / "images" / split / f"{i:06d}.jpg").write_bytes(buf.tobytes())
                _write_labels(tmp / "labels" / split / f"{i:06d}.txt", boxes, imgsz)

            if workers == 1:
                for i in range(n):
                    job(i)
            else:
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(job, range(n)))  # list() re-raises worker exceptions
        (tmp / MARKER).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")

        trash = None
        if root.exists():  # empty dir or our own build with other parameters: move aside, then swap
            trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, trash / "d")
        try:
            os.replace(tmp, root)
        except OSError:
            # Another process (e.g. a DDP rank) finished the same build first: keep theirs.
            if _read_marker(root) != meta:
                raise
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


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
    itself, so local features suffice. Skips the build if ``root`` already holds it.

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
    return _build("shapes", root, n_train, n_val, imgsz, seed, workers, _render_shapes, {})


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
    crop the cue or pair objects with another image's cue.

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
    if isinstance(min_gap, bool) or not isinstance(min_gap, (int, float)) or not 0.0 <= min_gap <= 0.5:
        raise ValueError(f"min_gap must be a number in [0, 0.5], got {min_gap!r}")
    min_gap = float(min_gap)

    def render(rng: np.random.Generator, side: int, index: int) -> tuple[np.ndarray, list[Box]]:
        return _render_context(rng, side, index, min_gap)

    return _build("context", root, n_train, n_val, imgsz, seed, workers, render, {"min_gap": min_gap})


def data_yaml(name: str) -> Path:
    """Path of a packaged data YAML, usable as ``model.train(data=...)``.

    Args:
        name: ``"shapes"`` or ``"context"``.
    """
    if name not in ("shapes", "context"):
        raise ValueError(f"name must be 'shapes' or 'context', got {name!r}")
    return Path(__file__).resolve().parent / "configs" / f"attn-{name}.yaml"


# ------------------------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m yolo_attn.datasets shapes|context DIR [--n-train N] [--n-val N] [--imgsz N] [--seed N]``.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.
    """
    p = argparse.ArgumentParser(prog="python -m yolo_attn.datasets", description="Generate a synthetic YOLO dataset.")
    p.add_argument("kind", choices=("shapes", "context"))
    p.add_argument("root", type=Path, help="output directory")
    p.add_argument("--n-train", type=int, default=600)
    p.add_argument("--n-val", type=int, default=120)
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="rendering threads (output does not depend on it)")
    p.add_argument("--min-gap", type=float, default=0.4, help="context only: cue-to-box gap as a fraction of imgsz")
    a = p.parse_args(argv)
    t = time.perf_counter()
    kw = dict(n_train=a.n_train, n_val=a.n_val, imgsz=a.imgsz, seed=a.seed, workers=a.workers)
    try:
        root = build_shapes(a.root, **kw) if a.kind == "shapes" else build_context(a.root, min_gap=a.min_gap, **kw)
    except (ValueError, FileExistsError) as e:
        p.error(str(e))
    print(f"{a.kind} dataset ready at {root} ({time.perf_counter() - t:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
