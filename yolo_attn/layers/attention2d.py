"""Multi-head self-attention over the pixels of a feature map, with optional channel reduction and key/value pooling.

`Attention2d` is the one implementation; `SpatialSelfAttention` and `EfficientSelfAttention` are two presets of it.
Its forward asks `switches.route` once which path to take and hands the answer down: the layouts (`layouts.py`)
and the pooling (`pooling.py`) only compute.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .attention import attend, attention_weights
from .checks import check_bool, check_channels, check_float, check_heads, check_int
from .layouts import map_of_rows, project, rows_of_map
from .pooling import kv_pool_factor, pool_factor, pool_map, pool_tokens
from .pos_embed import PositionalEncoding2d
from .switches import CHANNELS_FIRST_MIN, Route, route, use_fused_attn  # noqa: F401  CHANNELS_FIRST_MIN: old imports

_MAX_KERNEL = 2**31 - 1


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

    Shapes: (B, c1, H, W) -> (B, c2, H, W); `forward(x, shortcut)` adds a (B, c2, H, W) shortcut to the output.
    Output memory format: that of the route (`switches.route`): channels-first on the channels-first path (eager
    inference on a large contiguous map), channels-last otherwise.

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
        # A BatchNorm folded in by `fuse_input_norm`: the input becomes x * in_scale + shift, per channel, where the
        # shift lives in the position table when there is one (`PositionalEncoding2d.shift`), else in in_shift.
        self.register_buffer("in_scale", None)
        self.register_buffer("in_shift", None)
        self.qkv = nn.Linear(c1, 3 * self.dim, bias=check_bool(name, "qkv_bias", qkv_bias))  # one product: q, k, v
        self.proj = nn.Linear(self.dim, self.c2, bias=check_bool(name, "proj_bias", proj_bias))

    def tokens(self, x: torch.Tensor, graph: bool = False) -> torch.Tensor:
        """Return the contiguous (B, H, W, C) tokens of a (B, C, H, W) map, position (and a folded norm) applied."""
        B, C, H, W = x.shape
        check_channels(type(self).__name__, C, self.c1)
        xt = x.permute(0, 2, 3, 1)  # (B, H, W, C), a view
        offset = self.input_offset(H, W, x, channels_last=True, graph=graph)
        if offset is None:
            return xt.contiguous()
        # The offset comes first: a sum is laid out like its first operand that decides, and the (H, W, C) table
        # does, so adding position and moving to token layout are one pass, whatever x's memory format.
        offset = offset.permute(1, 2, 0)  # (H, W, C)
        if self.in_scale is None:
            return offset + xt
        # contiguous(): a no-op, except for a lone folded shift (no table), which cannot set the layout
        return torch.addcmul(offset, xt, self.in_scale.to(x.dtype)).contiguous()

    def channels_first(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (B, C, H, W) map, position (and a folded norm) applied, channels-first for `rows_of_map`."""
        B, C, H, W = x.shape
        check_channels(type(self).__name__, C, self.c1)
        offset = self.input_offset(H, W, x, channels_last=False)  # (C, H, W) or (C, 1, 1)
        if offset is None:
            return x
        if self.in_scale is None:
            return offset + x
        return torch.addcmul(offset, x, self.in_scale.to(x.dtype).view(C, 1, 1))

    def input_offset(
        self, height: int, width: int, x: torch.Tensor, channels_last: bool, graph: bool = False
    ) -> torch.Tensor | None:
        """What is added to the input before the products: the (C, H, W) position table (carrying a folded norm's
        shift), a folded shift alone as (C, 1, 1) when there is no table, or None. `graph`: build, never cache."""
        if self.pos is not None:
            return self.pos.table(height, width, x.device, x.dtype, channels_last, graph=graph)
        return None if self.in_shift is None else self.in_shift.to(x.dtype).view(-1, 1, 1)

    @torch.inference_mode(False)  # plain tensors even if fused inside inference mode: caches track their versions
    @torch.no_grad()
    def fuse_input_norm(self, norm: nn.BatchNorm2d) -> None:
        """Fold an inference-mode BatchNorm of this layer's input into the pass that adds position.

        Afterwards `self(x)` computes what `self(norm.eval()(x))` did, with one elementwise pass instead of two.
        For inference: the folded scale and shift are constants, not trained.
        """
        name = type(self).__name__
        if not isinstance(norm, nn.BatchNorm2d) or norm.running_mean is None:
            raise TypeError(f"{name}: fuse_input_norm takes a BatchNorm2d with running statistics, got {norm!r}.")
        check_channels(name, norm.num_features, self.c1, what="the norm has")
        if self.in_scale is not None:
            raise RuntimeError(f"{name}: a norm is already folded into this layer.")
        dtype = norm.running_mean.dtype
        wide = torch.promote_types(dtype, torch.float32)  # fold fp16 statistics in float32, as Ultralytics' convs
        scale = (norm.running_var.to(wide) + norm.eps).rsqrt()
        if norm.weight is not None:
            scale = scale * norm.weight.to(wide)
        shift = -norm.running_mean.to(wide) * scale
        if norm.bias is not None:
            shift = shift + norm.bias.to(wide)
        self.in_scale = scale.to(dtype)
        if self.pos is None:
            self.in_shift = shift.to(dtype)
        else:  # into the cached table, which then costs no more memory than before
            self.pos.shift = shift.to(dtype)

    pool_map = staticmethod(pool_map)
    pool_tokens = staticmethod(pool_tokens)

    def qkv_heads(self, x: torch.Tensor, r: Route | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project a (B, C, H, W) map to q (B, heads, H*W, d) and k, v (B, heads, Nk, d), last dims contiguous.

        `r` is the forward's route (`switches.route`); decided here when called on its own.
        """
        r = route(x) if r is None else r
        B, C, H, W = x.shape
        h, d, D = self.num_heads, self.head_dim, self.dim
        f = pool_factor(H, W, self.kv_stride, self.kv_tokens, r.mode)  # int, or a tensor when traced with a cap
        if r.channels_first:  # source and pooled source stay (B, C, H, W); products read them transposed
            src = self.channels_first(x)
            product, pool = rows_of_map, pool_map
        else:  # (B, H, W, C) tokens
            src = self.tokens(x, r.graph)

            def product(t, w, b):
                return project(t, w, b, r.graph)

            def pool(t, f):
                return pool_tokens(t, f, r.mode)

        if isinstance(f, int) and f == 1:
            # unbind, not qkv[0], qkv[1], qkv[2]: its backward is one stack, where three selects would each
            # zero-fill a full-size gradient and add it up; and along the q/k/v axis itself, so that stack lands
            # in the projection's layout, with no copy before the projection's backward.
            qkv = product(src, self.qkv.weight, self.qkv.bias).reshape(B, H * W, 3, h, d)
            q, k, v = qkv.unbind(2)  # 3 x (B, N, h, d)
            return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, h, N, d) views
        # split, not w[:D] / w[D:]: one concatenating backward instead of zero-filled slices summed together.
        wq, wkv = self.qkv.weight.split((D, 2 * D))
        bq, bkv = (None, None) if self.qkv.bias is None else self.qkv.bias.split((D, 2 * D))
        q = product(src, wq, bq).reshape(B, H * W, h, d).transpose(1, 2)  # (B, h, N, d)
        kv = product(pool(src, f), wkv, bkv).reshape(B, -1, 2, h, d)  # (B, Nk, 2, h, d)
        k, v = kv.unbind(2)  # 2 x (B, Nk, h, d)
        return q, k.transpose(1, 2), v.transpose(1, 2)  # (B, h, Nk, d) views

    def forward(self, x: torch.Tensor, shortcut: torch.Tensor | None = None) -> torch.Tensor:
        B, _, H, W = x.shape
        if shortcut is not None and shortcut.shape != (B, self.c2, H, W):
            raise ValueError(
                f"{type(self).__name__}: shortcut has shape {tuple(shortcut.shape)}, the output {(B, self.c2, H, W)}."
            )
        r = route(x)  # the one decision of this call: layout and mode
        q, k, v = self.qkv_heads(x, r)
        out = attend(q, k, v, self.attn_drop if self.training else 0.0, self.fused_attn)  # (B, h, N, d)
        out = out.transpose(1, 2)  # (B, N, h, d): how the fused kernels lay out their output, so reshapes are views
        if r.channels_first:
            base = None if shortcut is None else shortcut.reshape(B, self.c2, H * W)
            if self.proj.bias is not None:
                bias = self.proj.bias.view(-1, 1)  # (c2, 1): broadcast along the pixels
                base = bias if base is None else base + bias
            out = map_of_rows(out.reshape(B, H * W, self.dim), self.proj.weight, base)  # (B, c2, N)
            return out.view(B, self.c2, H, W)  # channels-first
        out = project(out.reshape(B, H, W, self.dim), self.proj.weight, self.proj.bias, r.graph)  # (B, H, W, c2)
        out = out.permute(0, 3, 1, 2)  # (B, c2, H, W), channels-last
        return out if shortcut is None else shortcut + out

    def macs(self, x_shape: tuple[int, int, int, int]) -> int:
        """Multiply-adds of one forward on a (B, C, H, W) input: products and attention, as FLOP counters count them.

        The products run as convolutions or batched GEMMs depending on the route (`switches.route`), which a counter
        of functional calls may not see, so counters are given this instead (yolo_attn.integration).
        """
        B, _, H, W = x_shape
        f = kv_pool_factor(H, W, self.kv_stride, self.kv_tokens)
        n, nk, c, d = H * W, -(-H // f) * -(-W // f), self.c1, self.dim
        return B * (n * c * d + nk * c * 2 * d + 2 * n * nk * d + n * d * self.c2)  # q, k/v, QK^T and AV, output

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
    """Self-attention among all pixels with q/k/v in c1 / reduction channels, in c1 / reduction / head_dim heads.

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
    """Self-attention whose keys/values come from the map average-pooled by `scale` .

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
