"""The one switch that decides whether attention runs through the fused SDPA kernel.

Mirrors timm's `use_fused_attn()`: modules read it once at construction and keep the result in `fused_attn`, so
a test (or a user debugging numerics) can flip one module, or all of them with `YOLO_ATTN_FUSED=0`.
"""

from __future__ import annotations

import os

_FALSE = {"0", "false", "no", "off"}


def use_fused_attn() -> bool:
    """Return False when the environment variable `YOLO_ATTN_FUSED` is 0/false/no/off, True otherwise.

    The unfused path materialises the N x N attention matrix: it exists to check the fused one and to read
    attention weights for visualisation, never for speed.
    """
    return os.environ.get("YOLO_ATTN_FUSED", "1").strip().lower() not in _FALSE
