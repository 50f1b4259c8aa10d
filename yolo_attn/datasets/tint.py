"""A weak cue spread over the whole image: a faint colour cast that only the image-wide average reveals."""

from __future__ import annotations

import cv2
import numpy as np

from . import draw, scenes
from ._build import Box

TINT_NAMES: tuple[str, ...] = ("tint_warm", "tint_cool", "tint_green", "tint_magenta")
# Two zero-sum BGR directions spanning the chroma plane; the four classes are +-u1, +-u2 (90 deg apart in hue,
# far beyond Ultralytics' default hue jitter; saturation jitter scales the cast but keeps its direction).
U1 = np.array([1.0, 0.0, -1.0]) / np.sqrt(2.0)  # B - R: cool (+) / warm (-)
U2 = np.array([-0.5, 1.0, -0.5]) / np.sqrt(1.5)  # G - (B + R) / 2: green (+) / magenta (-)
TINT_DIRS = np.stack([-U1, U1, U2, -U2])
TINT_AMPLITUDE = 6.0  # grey levels along the class direction
FIELD_STD = (14.0, 24.0)  # std range of the zero-mean local colour field that masks the cast locally


@scenes.retried
def render_tint(rng: np.random.Generator, side: int, index: int) -> tuple[np.ndarray, list[Box]]:
    """Grey squares on a grey scene; a zero-mean smooth colour field plus the class's faint cast over everything.

    The field's image mean is exactly zero, so the mean colour of the whole image is the cast, while any local
    window sees cast + field with the field about as strong as the cast or stronger.
    """
    cls = index % len(TINT_NAMES)
    img = draw.background(rng, side, 0.0, ((70, 110), (150, 190)))
    draw.distractors(img, rng, int(rng.integers(0, 4)), int(rng.integers(0, 3)), int(rng.integers(0, 4)), 0.0)
    squares = scenes.place_squares(img, rng, int(rng.integers(1, 7)), (0.06, 0.16), [])
    if not squares:
        raise scenes.NoLayout(f"tint: could not place any target at imgsz={side}")
    g = int(rng.integers(2, 6))
    grid = rng.uniform(-1.0, 1.0, (g, g, 2)).astype(np.float32)
    field = cv2.resize(grid, (side, side), interpolation=cv2.INTER_CUBIC)
    field -= field.reshape(-1, 2).mean(0)
    field *= np.float32(rng.uniform(*FIELD_STD) / (field.std() + 1e-6))
    cast = (TINT_AMPLITUDE * TINT_DIRS[cls]).astype(np.float32)
    img += field[..., :1] * U1.astype(np.float32) + field[..., 1:] * U2.astype(np.float32) + cast
    return draw.finish(img, rng), [(cls, *b) for b, _ in squares]
