"""Context tasks whose cue is a relation between objects, which max-pooling of local features cannot carry.

Targets are identical grey squares (:mod:`.scenes`); every cue object of every kind is present in every image, so
"what is somewhere in the image" says nothing: the class depends on *which* cue object belongs to *this* target
(its nearest one, the one at its mirror position) or on how many targets there are.
"""

from __future__ import annotations

import numpy as np

from . import draw, scenes
from ._build import Box
from .context import CONTEXT_CUE_BGR

COUNT_NAMES: tuple[str, ...] = ("two", "three", "four", "five")
NEAREST_COLOUR_NAMES: tuple[str, ...] = ("near_red", "near_green", "near_blue", "near_yellow")
NEIGHBOUR_SHAPE_NAMES: tuple[str, ...] = ("near_triangle", "near_star", "near_cross", "near_ring")
MIRROR_NAMES: tuple[str, ...] = ("mirror_red", "mirror_green", "mirror_blue", "mirror_yellow")
KEY_SHAPES: tuple[int, ...] = (2, 3, 4, 5)  # draw.SHAPES_NAMES indices: triangle, star, cross, ring

DISC_RADIUS = 0.045  # cue disc radius, fraction of the side
NEAR_GAP = 0.16  # nearest cue object's edge at least this far from the target's box (fraction of the side)
NEAR_RATIO = 1.3  # second-nearest cue centre at least this many times farther than the nearest one
MIRROR_MIN_R = 0.22  # target centre at least this far from the image centre (pairs >= 0.44 side apart)


def _cue_color(rng: np.random.Generator, k: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(v + rng.integers(-15, 16), 0, 255)) for v in CONTEXT_CUE_BGR[k])


def _grey_against(img: np.ndarray, box: tuple, rng: np.random.Generator) -> tuple[int, int, int]:
    """A grey whose luma stands out from the image under ``box``, so a cue shape is always visible."""
    x1, y1, x2, y2 = draw.pixel_box(box, img.shape[0])
    return draw.contrasting_color(rng, draw.luma(img[y1:y2, x1:x2].reshape(-1, 3).mean(0)), max_sat=0.0, min_diff=50.0)


def _need(boxes: list, what: str, side: int) -> None:
    if not boxes:
        raise scenes.NoLayout(f"{what}: could not place any target at imgsz={side}; use a larger imgsz")


@scenes.retried
def render_count(rng: np.random.Generator, side: int, index: int) -> tuple[np.ndarray, list[Box]]:
    """Class = how many grey squares the image holds (2..5), with 0-3 unlabelled grey decoy shapes beside them."""
    cls = index % len(COUNT_NAMES)  # cycled: balanced classes
    img = scenes.context_background(rng, side)
    taken: list = []
    for _ in range(int(rng.integers(0, 4))):  # decoys: other shapes, so "amount of stuff" is not the count
        shape = int(rng.choice((0, 2, 3, 4, 5)))
        size = side * rng.uniform(0.06, 0.12)
        poly, lo, hi = draw.shape_outline(shape, size, rng)
        c = rng.uniform(-lo, side - hi)
        box = (c[0] + lo[0], c[1] + lo[1], c[0] + hi[0], c[1] + hi[1])
        if any(scenes.gap(box, t) < 0.02 * side for t in taken):
            continue
        draw.draw_shape(img, shape, poly, c, size, _grey_against(img, box, rng), rng, 0.0)
        taken.append(box)
    squares = scenes.place_squares(img, rng, cls + 2, (0.06, 0.12), taken)
    if len(squares) != cls + 2:
        raise scenes.NoLayout(f"count: placed {len(squares)} of {cls + 2} squares at imgsz={side}; use a larger imgsz")
    return draw.finish(img, rng), [(cls, *b) for b, _ in squares]


def _nearest(keys: np.ndarray, key_boxes: list, box: tuple, c: np.ndarray, side: int) -> int | None:
    """Index of the clearly nearest key to a target (centre distances), or None if it is close or ambiguous."""
    d = np.hypot(*(keys - c).T)
    order = np.argsort(d)
    if scenes.gap(box, key_boxes[order[0]]) < NEAR_GAP * side or d[order[1]] < NEAR_RATIO * d[order[0]]:
        return None
    return int(order[0])


def _render_nearest(
    rng: np.random.Generator, side: int, draw_key, key_radius: float
) -> tuple[np.ndarray, list[Box]]:
    """Four cue objects (one per class) spread out, then 1-6 squares named by their clearly nearest cue object."""
    img = scenes.context_background(rng, side)
    keys = scenes.spread_points(rng, side, 4, key_radius * side * 1.2, 0.3 * side)
    kinds = rng.permutation(4)  # cue object k shows class kinds[k]
    key_boxes = [draw_key(img, rng, keys[k], int(kinds[k])) for k in range(4)]

    def accept(box: tuple, c: np.ndarray) -> bool:
        return _nearest(keys, key_boxes, box, c, side) is not None

    squares = scenes.place_squares(img, rng, int(rng.integers(1, 7)), (0.06, 0.12), list(key_boxes), accept)
    boxes = [(int(kinds[_nearest(keys, key_boxes, b, c, side)]), *b) for b, c in squares]
    _need(boxes, "nearest", side)
    return draw.finish(img, rng), boxes


@scenes.retried
def render_nearest_colour(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[Box]]:
    """Class = colour of the target's nearest cue disc; all four colours are in every image."""
    r = DISC_RADIUS * side

    def key(img: np.ndarray, rng: np.random.Generator, c: np.ndarray, k: int) -> tuple:
        scenes.draw_disc(img, c, r, _cue_color(rng, k))
        return scenes.disc_box(c, r)

    return _render_nearest(rng, side, key, DISC_RADIUS)


@scenes.retried
def render_neighbour_shape(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[Box]]:
    """Class = shape of the target's nearest grey key shape (triangle, star, cross, ring); all four in every image."""
    size_frac = 0.12

    def key(img: np.ndarray, rng: np.random.Generator, c: np.ndarray, k: int) -> tuple:
        shape, size = KEY_SHAPES[k], size_frac * side
        poly, lo, hi = draw.shape_outline(shape, size, rng)
        box = float(c[0] + lo[0]), float(c[1] + lo[1]), float(c[0] + hi[0]), float(c[1] + hi[1])
        draw.draw_shape(img, shape, poly, c, size, _grey_against(img, box, rng), rng, 0.0)
        return box

    return _render_nearest(rng, side, key, size_frac / 2)


@scenes.retried
def render_mirror(rng: np.random.Generator, side: int, _index: int) -> tuple[np.ndarray, list[Box]]:
    """Class = colour of the disc at the target's point reflection through the image centre.

    1-4 targets, each at least ``MIRROR_MIN_R`` of the side from the centre, so a target and its partner are far
    apart; colours missing from the partners are added as decoy discs away from every mirror position, so all four
    colours are in every image and only the position relation names a target. Flips keep the relation.
    """
    img = scenes.context_background(rng, side)
    r = DISC_RADIUS * side
    centre = np.full(2, side / 2)
    taken: list = []

    def accept(box: tuple, c: np.ndarray) -> bool:
        q = 2 * centre - c
        if np.hypot(*(c - centre)) < MIRROR_MIN_R * side or not (r <= q[0] <= side - r and r <= q[1] <= side - r):
            return False
        disc = scenes.disc_box(q, r)
        if scenes.gap(disc, box) < 0.02 * side or any(scenes.gap(disc, t) < 0.02 * side for t in taken):
            return False
        taken.append(disc)  # reserved for the partner, drawn below
        return True

    squares = scenes.place_squares(img, rng, int(rng.integers(1, 5)), (0.06, 0.12), taken, accept)
    _need(squares, "mirror", side)
    labels = [int(k) for k in rng.integers(0, 4, len(squares))]
    mirrors = [2 * centre - c for _, c in squares]
    for q, k in zip(mirrors, labels):
        scenes.draw_disc(img, q, r, _cue_color(rng, k))
    for k in sorted(set(range(4)) - set(labels)):
        for _ in range(200):  # decoy: clear of everything and of every target's mirror position
            q = rng.uniform(r, side - r, 2)
            disc = scenes.disc_box(q, r)
            if all(scenes.gap(disc, t) >= 0.02 * side for t in taken) and all(
                np.hypot(*(q - m)) >= 0.1 * side for m in mirrors
            ):
                scenes.draw_disc(img, q, r, _cue_color(rng, k))
                taken.append(disc)
                break
    return draw.finish(img, rng), [(k, *b) for (b, _), k in zip(squares, labels)]
