"""Multi-head self-attention over the pixels of a feature map, with optional channel reduction and key/value pooling.

`Attention2d` is the one implementation; `SpatialSelfAttention` and `EfficientSelfAttention` are the seed's two
feature-map layers expressed as its presets.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import check_bool, check_float, check_heads, check_int
from .attention import attend, attention_weights
from .config import use_fused_attn
from .export import avg_pool_ceil, is_traced, kv_pool_factor_traced
from .pos_embed import PositionalEncoding2d

_MAX_KERNEL = 2**31 - 1


def kv_pool_factor(height: int, width: int, stride: int, max_tokens: int) -> int:
    """Return the key/value pooling factor: `stride`, raised until at most `max_tokens` keys remain (0 = no cap).

    With a cap, attention costs O(N * max_tokens) instead of O(N^2), so large images stay affordable while every
    query still sees a summary of the whole image.
    """
    f = stride
    if max_tokens and -(-height // f) * -(-width // f) > max_tokens:  # -(-a // b): ceil(a / b), exact on ints
        if not torch.compiler.is_compiling():  # compiled sizes may be symbolic, and isqrt takes only ints
            f = max(f, math.isqrt(height * width // max_tokens))  # close guess, then walk up: ceil() can overshoot
        while -(-height // f) * -(-width // f) > max_tokens:
            f += 1
    return f


def project(tokens: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """`F.linear` over the channels of (B, H, W, C) tokens -> (B, H, W, out), as a 1x1 convolution when training.

    While autograd records (a training step) the product runs as a 1x1 cuDNN convolution of the channels-last map
    the tokens already are: in PyTorch's deterministic mode, which `yolo train` turns on, a cuBLAS GEMM costs the
    host about 3x the time of the same product through cuDNN (53 vs 17 us on an H200 host, 371 vs 188 us with its
    backward), and an eager training step is bound by host time (docs/benchmarks.md). Without autograd (inference,
    FLOP counting) or while compiling or tracing (export) it is the plain GEMM: the same arithmetic, exported as
    MatMul, and what torch.compile handles best (compiled, the convolution form trained at 0.89x of yolov8n with
    1.25x its memory, the GEMM form at 0.92x with 1.06x).
    """
    if torch.is_grad_enabled() and not is_traced():
        w = weight.view(*weight.shape, 1, 1)  # (out, C, 1, 1), a view: the weight's gradient stays a plain matrix
        return F.conv2d(tokens.permute(0, 3, 1, 2), w, bias).permute(0, 2, 3, 1)
    return F.linear(tokens, weight, bias)


class Attention2d(nn.Module):
    """Multi-head self-attention among the H*W pixels of a (B, C, H, W) map, through the fused SDPA kernel.

    Queries come from every pixel; keys and values from the map average-pooled by `kv_stride` (and further, when
    `kv_tokens` caps their count). Optional 2-D sine-cosine position is added before the projections, so attention
    can tell near from far. Works for any H, W: pooling windows at the border average only real pixels.

    Positional signature: `Attention2d(c1, c2=None, head_dim=32, reduction=1, kv_stride=1, kv_tokens=0, pos=True,
    attn_drop=0.0, qkv_bias=True, proj_bias=True)`.

    Args:
        c1 (int): input channels C.
        c2 (int | None): output channels (default c1).
        head_dim (int): channels per head; heads = (c1 / reduction) / head_dim. 32 or 64 suits the fused kernels.
        reduction (int): q/k/v use c1 / reduction channels.
        kv_stride (int): keys/values come from the map average-pooled by this factor (1 = every pixel).
        kv_tokens (int): if > 0, keys/values are pooled further until at most this many remain.
        pos (bool): add a 2-D sine-cosine position encoding (needs c1 divisible by 4).
        attn_drop (float): dropout on attention weights (training only).
        qkv_bias (bool): bias on the q/k/v projection.
        proj_bias (bool): bias on the output projection.

    Shapes: (B, c1, H, W) -> (B, c2, H, W).

    Examples:
        >>> attn = Attention2d(64, head_dim=32, kv_stride=2)
        >>> attn(torch.randn(2, 64, 13, 17)).shape
        torch.Size([2, 64, 13, 17])
    """

    def __init__(
        self,
        c1: int,
        c2: int | None = None,
        head_dim: int = 32,
        reduction: int = 1,
        kv_stride: int = 1,
        kv_tokens: int = 0,
        pos: bool = True,
        attn_drop: float = 0.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
    ):
        super().__init__()
        name = type(self).__name__
        self.c1 = check_int(name, "c1 (input channels)", c1)
        self.c2 = c1 if c2 is None else check_int(name, "c2 (output channels)", c2)
        self.head_dim = check_int(name, "head_dim", head_dim)
        self.reduction = check_int(name, "reduction", reduction)
        if c1 % reduction:
            raise ValueError(f"{name}: {c1} channels are not divisible by reduction {reduction}; use a divisor of {c1}.")
        self.dim = c1 // reduction  # channels of q, k and v
        self.num_heads = check_heads(name, self.dim, head_dim, what="attention channels c1/reduction =")
        self.kv_stride = check_int(name, "kv_stride (scale)", kv_stride)
        if kv_stride > _MAX_KERNEL:  # the pooling kernel is a C int; forward would fail deep inside torch
            raise ValueError(
                f"{name}: kv_stride (scale) must be <= {_MAX_KERNEL}, got {kv_stride}; any stride >= the map size "
                "already pools keys/values to a single token."
            )
        self.kv_tokens = check_int(name, "kv_tokens", kv_tokens, minimum=0)
        if check_bool(name, "pos", pos) and c1 % 4:
            raise ValueError(f"{name}: pos=True needs channels divisible by 4, got {c1}; set pos=False or change width.")
        self.attn_drop = check_float(name, "attn_drop", attn_drop)
        self.fused_attn = use_fused_attn()
        self.pos = PositionalEncoding2d(c1) if pos else None
        self.qkv = nn.Linear(c1, 3 * self.dim, bias=check_bool(name, "qkv_bias", qkv_bias))  # one product: q, k, v
        self.proj = nn.Linear(self.dim, self.c2, bias=check_bool(name, "proj_bias", proj_bias))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, H, W, C) pixel tokens of a (B, C, H, W) map, position added, contiguous."""
        B, C, H, W = x.shape
        if C != self.c1:
            raise ValueError(f"{type(self).__name__}: input has {C} channels, layer was built for c1={self.c1}.")
        if self.pos is None:
            return x.permute(0, 2, 3, 1).contiguous()
        # The table comes first: a sum is laid out like its first operand that decides, and the (H, W, C) table
        # does, so adding position and moving to token layout are one pass, whatever x's memory format.
        return self.pos.table(H, W, x.device, x.dtype).permute(1, 2, 0) + x.permute(0, 2, 3, 1)

    @staticmethod
    def pool_tokens(tokens: torch.Tensor, f, traced: bool = False) -> torch.Tensor:
        """Average (B, H, W, C) tokens over f x f windows -> (B, ceil(H/f), ceil(W/f), C); border windows partial."""
        B, H, W, C = tokens.shape
        if traced:  # f is a tensor: pooling spelled out in graph ops
            return avg_pool_ceil(tokens.permute(0, 3, 1, 2), f).permute(0, 2, 3, 1)
        if H % f == 0 and W % f == 0 and not torch.jit.is_tracing():  # traced, the size test would be frozen
            # A mean over a view of the windows: its backward is one broadcast, where avg_pool2d's channels-last
            # backward is slow (forward + backward 307 vs 89 us at P3, batch 32, H200; docs/benchmarks.md).
            return tokens.view(B, H // f, f, W // f, f, C).mean((2, 4))
        # count_include_pad=False: border windows average real pixels only, and ONNX AveragePool agrees.
        grid = tokens.permute(0, 3, 1, 2)  # (B, C, H, W) with channels-last strides, which avg_pool2d keeps
        return F.avg_pool2d(grid, f, f, ceil_mode=True, count_include_pad=False).permute(0, 2, 3, 1)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project a (B, C, H, W) map to q (B, heads, H*W, d) and k, v (B, heads, Nk, d), last dims contiguous."""
        B, C, H, W = x.shape
        h, d, D = self.num_heads, self.head_dim, self.dim
        tokens = self.tokens(x)  # (B, H, W, C)
        # Tracing (export): a capped factor depends on H, W, so compute it and pool in-graph, not frozen at one size.
        traced_cap = bool(self.kv_tokens) and torch.jit.is_tracing()
        f = (kv_pool_factor_traced if traced_cap else kv_pool_factor)(H, W, self.kv_stride, self.kv_tokens)
        if not traced_cap and f == 1:
            # unbind, not qkv[0], qkv[1], qkv[2]: its backward is one stack, where three selects would each
            # zero-fill a full-size gradient and add it up; and along the q/k/v axis itself, so that stack lands
            # in the projection's layout, with no copy before the projection's backward.
            qkv = project(tokens, self.qkv.weight, self.qkv.bias).reshape(B, H * W, 3, h, d)
            q, k, v = qkv.unbind(2)  # 3 x (B, N, h, d)
            return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, h, N, d) views
        # split, not w[:D] / w[D:]: one concatenating backward instead of zero-filled slices summed together.
        wq, wkv = self.qkv.weight.split((D, 2 * D))
        bq, bkv = (None, None) if self.qkv.bias is None else self.qkv.bias.split((D, 2 * D))
        q = project(tokens, wq, bq).reshape(B, H * W, h, d).transpose(1, 2)  # (B, h, N, d)
        kv = project(self.pool_tokens(tokens, f, traced_cap), wkv, bkv).reshape(B, -1, 2, h, d)  # (B, Nk, 2, h, d)
        k, v = kv.unbind(2)  # 2 x (B, Nk, h, d)
        return q, k.transpose(1, 2), v.transpose(1, 2)  # (B, h, Nk, d) views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        q, k, v = self.qkv_heads(x)
        out = attend(q, k, v, self.attn_drop if self.training else 0.0, self.fused_attn)  # (B, h, N, d)
        out = out.transpose(1, 2).reshape(B, H, W, self.dim)  # (B, H, W, D): a view of the kernel's output
        return project(out, self.proj.weight, self.proj.bias).permute(0, 3, 1, 2)  # (B, c2, H, W), channels-last

    @torch.no_grad()
    def attention_map(self, x: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Attention weights of chosen query pixels over the key grid, without building the full N x N map.

        Args:
            x (torch.Tensor): the layer's input, (B, C, H, W).
            queries (torch.Tensor): (Q, 2) long tensor of (row, col) pixel positions.

        Returns:
            (torch.Tensor): (B, heads, Q, Hk, Wk) weights; each query's map sums to 1.
        """
        B, _, H, W = x.shape
        q, k, _ = self.qkv_heads(x)
        idx = queries[:, 0] * W + queries[:, 1]  # flat pixel index, (Q,)
        weights = attention_weights(q[:, :, idx], k)  # (B, h, Q, Nk)
        f = kv_pool_factor(H, W, self.kv_stride, self.kv_tokens)
        return weights.view(B, self.num_heads, len(idx), math.ceil(H / f), math.ceil(W / f))


class SpatialSelfAttention(Attention2d):
    """Self-attention among all pixels with q/k/v in c1 / reduction channels (the seed's spatial attention).

    Unlike the seed, heads are real (c1 / reduction / head_dim of them) and position is encoded.

    Positional signature: `SpatialSelfAttention(c1, head_dim=32, reduction=2, pos=True, c2=None)`.

    Args:
        c1 (int): input channels C.
        head_dim (int): channels per head.
        reduction (int): q/k/v use c1 / reduction channels.
        pos (bool): add a 2-D sine-cosine position encoding.
        c2 (int | None): output channels (default c1).

    Shapes: (B, c1, H, W) -> (B, c2, H, W).

    Examples:
        >>> SpatialSelfAttention(64)(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 64, 8, 8])
    """

    def __init__(self, c1: int, head_dim: int = 32, reduction: int = 2, pos: bool = True, c2: int | None = None):
        super().__init__(c1, c2, head_dim=head_dim, reduction=reduction, pos=pos)


class EfficientSelfAttention(Attention2d):
    """Self-attention whose keys/values come from the map average-pooled by `scale` (the seed's efficient attention).

    Cost is O(N^2 / scale^2); with `kv_tokens` it is capped at O(N * kv_tokens) for any image size.

    Positional signature: `EfficientSelfAttention(c1, head_dim=32, scale=2, pos=True, kv_tokens=0, c2=None)`.

    Args:
        c1 (int): input channels C.
        head_dim (int): channels per head.
        scale (int): key/value pooling factor; any H, W works (border windows are partial).
        pos (bool): add a 2-D sine-cosine position encoding.
        kv_tokens (int): if > 0, at most this many keys/values.
        c2 (int | None): output channels (default c1).

    Shapes: (B, c1, H, W) -> (B, c2, H, W).

    Examples:
        >>> EfficientSelfAttention(64, scale=2)(torch.randn(1, 64, 13, 17)).shape
        torch.Size([1, 64, 13, 17])
    """

    def __init__(
        self, c1: int, head_dim: int = 32, scale: int = 2, pos: bool = True, kv_tokens: int = 0, c2: int | None = None
    ):
        super().__init__(c1, c2, head_dim=head_dim, kv_stride=scale, kv_tokens=kv_tokens, pos=pos)
