"""Sine-cosine position encodings: pure tensor functions, and thin modules around them."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .checks import check_channels, check_float, check_int
from .switches import is_traced

_FLOAT_MAX = torch.finfo(torch.float64).max


def build_sincos1d_pos_embed(length: int, dim: int, temperature: float = 10000.0, device=None) -> torch.Tensor:
    """Return the (length, dim) table of "Attention Is All You Need": sin on even, cos on odd channels.

    Odd `dim` is allowed (the last cos column is dropped), unlike the usual recipe that fails on it.
    """
    half = (dim + 1) // 2
    position = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)  # (L, 1)
    omega = torch.exp(torch.arange(half, dtype=torch.float32, device=device) * (-2.0 * math.log(temperature) / dim))
    angles = position * omega  # (L, half)
    table = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)  # (L, 2 * half), interleaved sin/cos
    return table[:, :dim]


def build_sincos2d_pos_embed(
    height: int, width: int, dim: int, temperature: float = 10000.0, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Return the (dim, height, width) 2-D table of MoCo v3 / ViTDet: dim/4 frequencies for each of sin/cos x/y.

    Channel layout: [sin(x), cos(x), sin(y), cos(y)], each dim/4 wide. `dim` must be divisible by 4.
    Computed in float32 and cast at the end, so fp16 tables are as accurate as fp16 allows.
    """
    if dim % 4:
        raise ValueError(f"build_sincos2d_pos_embed: dim {dim} must be divisible by 4 (one quarter per sin/cos x/y).")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)  # (D/4,)
    ys = torch.arange(height, dtype=torch.float32, device=device)[:, None] * omega  # (H, D/4)
    xs = torch.arange(width, dtype=torch.float32, device=device)[:, None] * omega  # (W, D/4)
    x_part = torch.cat((xs.sin(), xs.cos()), dim=1).t()[:, None, :].expand(-1, height, -1)  # (D/2, H, W)
    y_part = torch.cat((ys.sin(), ys.cos()), dim=1).t()[:, :, None].expand(-1, -1, width)  # (D/2, H, W)
    return torch.cat((x_part, y_part), dim=0).to(dtype)  # (D, H, W)


class PositionalEncoding(nn.Module):
    """Adds the 1-D sinusoidal encoding to a sequence (its limits checked).

    Positional signature: `PositionalEncoding(d_model, max_len=5000, dropout=0.1)`.

    Args:
        d_model (int): channels C of the input.
        max_len (int): longest sequence accepted; longer inputs raise a ValueError naming the fix.
        dropout (float): dropout applied after the addition (training only).

    Shapes: (B, N, C) -> (B, N, C).

    Examples:
        >>> pe = PositionalEncoding(16, max_len=100, dropout=0.0)
        >>> pe(torch.zeros(2, 10, 16)).shape
        torch.Size([2, 10, 16])
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.1):
        super().__init__()
        self.d_model = check_int("PositionalEncoding", "d_model", d_model)
        self.max_len = check_int("PositionalEncoding", "max_len", max_len)
        self.dropout = nn.Dropout(check_float("PositionalEncoding", "dropout", dropout))
        # Not persistent: a fixed table is code, not a weight, and would only bloat checkpoints.
        self.register_buffer("pe", build_sincos1d_pos_embed(max_len, d_model)[None], persistent=False)  # (1, L, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        if C != self.d_model:
            raise ValueError(f"PositionalEncoding: input has {C} channels, layer was built for d_model={self.d_model}.")
        if N > self.max_len:
            raise ValueError(f"PositionalEncoding: sequence length {N} exceeds max_len={self.max_len}; raise max_len.")
        return self.dropout(x + self.pe[:, :N].to(x.dtype))


class PositionalEncoding2d(nn.Module):
    """Adds a fixed 2-D sine-cosine encoding to a feature map, for any H and W.

    The table depends only on (H, W, C), so it is cached per size in eager mode and rebuilt inside the graph
    while compiling or exporting (so exported models accept any input size).

    Positional signature: `PositionalEncoding2d(c1, temperature=10000.0)`.

    Args:
        c1 (int): channels C of the input, divisible by 4.
        temperature (float): longest wavelength of the encoding.

    Shapes: (B, C, H, W) -> (B, C, H, W).

    Examples:
        >>> pe = PositionalEncoding2d(32)
        >>> pe(torch.zeros(1, 32, 13, 17)).shape
        torch.Size([1, 32, 13, 17])
    """

    def __init__(self, c1: int, temperature: float = 10000.0):
        super().__init__()
        self.c1 = check_int("PositionalEncoding2d", "c1", c1)
        if c1 % 4:
            raise ValueError(f"PositionalEncoding2d: channels {c1} must be divisible by 4; use a width multiple of 4.")
        # `not 1 < t < max`: refuses NaN (every comparison is False), inf, and ints too large for a float.
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 1 < temperature < _FLOAT_MAX:
            raise ValueError(f"PositionalEncoding2d: temperature must be a finite number > 1, got {temperature!r}.")
        self.temperature = float(temperature)
        # Optional (C,) constant added with the table: where `Attention2d.fuse_input_norm` puts a BatchNorm's shift.
        self.register_buffer("shift", None)
        self._cache: tuple[tuple, torch.Tensor] | None = None

    def table(
        self,
        height: int,
        width: int,
        device: torch.device,
        dtype: torch.dtype,
        channels_last: bool = True,
        graph: bool | None = None,
    ) -> torch.Tensor:
        """Return the (C, H, W) table for this size, from the cache unless a graph is being captured.

        Laid out with (H, W, C) strides for adding in token layout (see `Attention2d.tokens`), or channels-first with
        `channels_last=False`: an add reads its operands fastest along the output's innermost dimension, so a table
        laid out like the output is read in whole cache lines. `graph`: the caller's `Route.graph`, when it has one.
        """
        if is_traced() if graph is None else graph:  # then the table is built in-graph, never cached
            return self._build(height, width, device, dtype)
        shift = self.shift
        if shift is not None:  # set, moved or edited in place (inference tensors keep no version: set or moved only)
            shift = (shift.data_ptr(), None if shift.is_inference() else shift._version)
        key = (height, width, device, dtype, channels_last, shift)
        if self._cache is None or self._cache[0] != key:
            table = self._build(height, width, device, dtype)
            self._cache = (key, table.permute(1, 2, 0).contiguous().permute(2, 0, 1) if channels_last else table)
        return self._cache[1]

    def _build(self, height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        table = build_sincos2d_pos_embed(height, width, self.c1, self.temperature, device, dtype)
        return table if self.shift is None else table + self.shift.to(device, dtype).view(-1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        check_channels("PositionalEncoding2d", C, self.c1)
        return x + self.table(H, W, x.device, x.dtype, channels_last=not x.is_contiguous())

    def __getstate__(self):
        # The cached table is derived data: keep it out of checkpoints and deep copies (EMA).
        state = self.__dict__.copy()
        state["_cache"] = None
        return state
