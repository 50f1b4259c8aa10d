"""The switches that pick how a layer computes: fused attention or not, and the forward route of `Attention2d`.

Every decision that depends on the running mode (eager, compiling, tracing for export) or on grad mode is taken
here, once per call, and handed down; the maths below it takes the decision as an argument and asks nothing.
"""

from __future__ import annotations

import enum
import os
from typing import NamedTuple

import torch

_FALSE = {"0", "false", "no", "off"}

CHANNELS_FIRST_MIN = 2**21  # elements of a map from which eager inference reads it channels-first (see `route`)


def use_fused_attn() -> bool:
    """Return False when the environment variable `YOLO_ATTN_FUSED` is 0/false/no/off, True otherwise.

    Modules read it once at construction and keep the result in `fused_attn` (as timm's `use_fused_attn()`), so a
    test, or a user debugging numerics, can flip one module or all of them. The unfused path materialises the N x N
    attention matrix: it exists to check the fused one and to read attention weights, never for speed.
    """
    return os.environ.get("YOLO_ATTN_FUSED", "1").strip().lower() not in _FALSE


class Mode(enum.Enum):
    """How the running forward is being executed."""

    EAGER = "eager"  # plain Python: sizes are ints, caches are allowed
    COMPILING = "compiling"  # torch.compile: sizes may be symbolic ints, nothing may be cached
    TRACING = "tracing"  # torch.jit.trace (Ultralytics' TorchScript, ONNX, OpenVINO export): sizes are tensors


def mode() -> Mode:
    """The execution mode now. TorchScript scripting is not a supported mode: export traces (what Ultralytics does)."""
    if torch.jit.is_tracing():
        return Mode.TRACING
    if torch.compiler.is_compiling():
        return Mode.COMPILING
    return Mode.EAGER


def is_traced() -> bool:
    """True while compiling or tracing (export): code that caches or picks by size must not, then."""
    return mode() is not Mode.EAGER


class Route(NamedTuple):
    """The forward path of one `Attention2d` call, decided once by `route`.

    mode: eager, compiling or tracing (export); graph modes use plain GEMMs and build tables in-graph.
    channels_first: the products read the (B, C, H, W) map transposed and write a channels-first output; otherwise
        the map is laid out as (B, H, W, C) tokens and the output is channels-last.
    """

    mode: Mode
    channels_first: bool

    @property
    def graph(self) -> bool:
        """True when a graph is being captured (compiling or tracing)."""
        return self.mode is not Mode.EAGER


def route(x: torch.Tensor) -> Route:
    """Decide the forward path of `Attention2d` for input `x`; called once per forward.

    Attention needs pixels as rows. Training, compiling and export lay the map out as tokens, which costs nothing
    extra on the channels-last maps training runs on. Eager inference on a large contiguous channels-first map (as
    Ultralytics predicts and validates) reads the map transposed instead, so neither the input nor the output
    changes layout. Small maps take the token path: there the host, not the GPU, is the bottleneck, and the token
    path launches cheaper kernels. The rule for the output memory format follows: channels-first exactly when
    `channels_first` is True (eager, no grad, contiguous input of at least `CHANNELS_FIRST_MIN` elements),
    channels-last otherwise.
    """
    m = mode()
    # The mode before numel(): traced, sizes are tensors, and a comparison on them would be frozen into the graph.
    channels_first = (
        m is Mode.EAGER and not torch.is_grad_enabled() and x.is_contiguous() and x.numel() >= CHANNELS_FIRST_MIN
    )
    return Route(m, channels_first)
