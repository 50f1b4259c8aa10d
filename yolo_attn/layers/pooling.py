"""Plain-torch helpers that keep attention exportable: size-dependent choices computed inside the traced graph.

Ultralytics exports TorchScript, ONNX and OpenVINO by `torch.jit.trace`. While tracing, `x.shape` gives 0-dim
tensors, and any Python decision taken on them (an `if`, `math.ceil`, a pooling kernel size) is frozen at the
export size. `Attention2d` with a key/value cap (`kv_tokens > 0`) picks its pooling factor from the map size, so
under tracing it calls these functions instead: the factor and the pooling are then graph operations, and an
exported dynamic model pools exactly as the PyTorch model does at every input size.

`kv_pool_factor_traced` and `avg_pool_ceil` also accept plain ints and run eagerly, which is how the tests compare
them with `kv_pool_factor` and `F.avg_pool2d`. `pool_tokens` and `pool_map` are the two layouts' poolings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .switches import Mode, is_traced  # noqa: F401  is_traced: re-exported for old imports

__all__ = ["avg_pool_ceil", "kv_pool_factor", "kv_pool_factor_traced", "pool_factor", "pool_map", "pool_tokens"]


def kv_pool_factor(height: int, width: int, stride: int, max_tokens: int, guess: bool = True) -> int:
    """Return the key/value pooling factor: `stride`, raised until at most `max_tokens` keys remain (0 = no cap).

    With a cap, attention costs O(N * max_tokens) instead of O(N^2), so large images stay affordable while every
    query still sees a summary of the whole image. `guess=False` skips the integer square root that starts the
    search close to the answer; compiled sizes may be symbolic, and `math.isqrt` takes only ints.
    """
    f = stride
    if max_tokens and -(-height // f) * -(-width // f) > max_tokens:  # -(-a // b): ceil(a / b), exact on ints
        if guess:
            f = max(f, math.isqrt(height * width // max_tokens))  # close guess, then walk up: ceil() can overshoot
        while -(-height // f) * -(-width // f) > max_tokens:
            f += 1
    return f


def pool_factor(height, width, stride: int, max_tokens: int, mode: Mode):
    """The pooling factor for the running mode: an int, or, while tracing with a cap, an in-graph int64 tensor."""
    if mode is Mode.TRACING and max_tokens:
        return kv_pool_factor_traced(height, width, stride, max_tokens)
    return kv_pool_factor(height, width, stride, max_tokens, guess=mode is Mode.EAGER)


def _tensor(v) -> torch.Tensor:
    """`v` as a tensor; a tensor (a traced size) passes through untouched, so the trace keeps following it."""
    return v if isinstance(v, torch.Tensor) else torch.tensor(v)


def _ceil_div(a, b) -> torch.Tensor:
    """ceil(a / b) for positive integers (ints or int64 tensors): a plain integer Div once exported."""
    return torch.div(_tensor(a) + b - 1, b, rounding_mode="trunc")


def kv_pool_factor_traced(height, width, stride: int, max_tokens: int) -> torch.Tensor:
    """Return `kv_pool_factor(height, width, stride, max_tokens)` as an int64 0-dim tensor, computed with tensor ops.

    The smallest f >= stride with ceil(H/f) * ceil(W/f) <= max_tokens. That count never grows with f, so the
    factors that fail form a prefix of the candidates stride, stride+1, ..., max(H, W, stride), and f is stride
    plus their number. At most max(H, W) candidates: a few hundred scalars, nothing next to the attention.

    Examples:
        >>> int(kv_pool_factor_traced(80, 80, 1, 1600)), int(kv_pool_factor_traced(40, 40, 1, 1600))
        (2, 1)
    """
    # Integer arithmetic throughout: exact at any size, and untouched by an fp16 conversion of the graph.
    h, w = _tensor(height), _tensor(width)
    top = torch.maximum(h, w).clamp(min=stride)
    f = torch.arange(stride, top + 1)  # candidates; at f = max(H, W) a single key remains
    count = _ceil_div(h, f) * _ceil_div(w, f)
    return (count > max_tokens).sum() + stride


def avg_pool_ceil(x: torch.Tensor, f) -> torch.Tensor:
    """`F.avg_pool2d(x, f, f, ceil_mode=True, count_include_pad=False)` for a factor `f` that may be a tensor.

    ONNX AveragePool, like every exported pooling op, takes its kernel size as a constant; this pads the map with
    zeros to a multiple of f, sums f x f windows through a reshape, and divides by the real pixels in each.

    Examples:
        >>> x = torch.arange(10.0).view(1, 1, 2, 5)
        >>> avg_pool_ceil(x, 2)  # windows [0 1; 5 6], [2 3; 7 8], [4; 9]
        tensor([[[[3.0000, 5.0000, 6.5000]]]])
    """
    B, C, H, W = x.shape
    f = _tensor(f)
    hk, wk = _ceil_div(H, f), _ceil_div(W, f)
    pad = (0, wk * f - W, 0, hk * f - H)  # right and bottom, as ceil_mode windows overhang there
    total = F.pad(x, pad).reshape(B, C, hk, f, wk, f).sum((3, 5))
    count = F.pad(torch.ones_like(x[:1, :1]), pad).reshape(1, 1, hk, f, wk, f).sum((3, 5))
    return total / count


def pool_map(x: torch.Tensor, f: int) -> torch.Tensor:
    """Average a channels-first (B, C, H, W) map over f x f windows, border windows partial (eager inference)."""
    return F.avg_pool2d(x, f, f, ceil_mode=True, count_include_pad=False)


def pool_tokens(tokens: torch.Tensor, f, mode: Mode = Mode.EAGER) -> torch.Tensor:
    """Average (B, H, W, C) tokens over f x f windows -> (B, ceil(H/f), ceil(W/f), C); border windows partial."""
    B, H, W, C = tokens.shape
    if isinstance(f, torch.Tensor):  # a traced factor: pooling spelled out in graph ops
        return avg_pool_ceil(tokens.permute(0, 3, 1, 2), f).permute(0, 2, 3, 1)
    if mode is not Mode.TRACING and H % f == 0 and W % f == 0:  # traced, the size test would be frozen
        # A mean over a view of the windows: its backward is one broadcast, where avg_pool2d's channels-last
        # backward is slow.
        return tokens.view(B, H // f, f, W // f, f, C).mean((2, 4))
    # count_include_pad=False: border windows average real pixels only, and ONNX AveragePool agrees.
    grid = tokens.permute(0, 3, 1, 2)  # (B, C, H, W) with channels-last strides, which avg_pool2d keeps
    return F.avg_pool2d(grid, f, f, ceil_mode=True, count_include_pad=False).permute(0, 2, 3, 1)
