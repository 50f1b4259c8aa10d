"""Shared by the layer tests: float64 references written independently of the layers, and graph probes."""

from __future__ import annotations

import math

import torch

from yolo_attn import Attention2d, SelfAttentionBlock, build_sincos2d_pos_embed
from yolo_attn.layers.pooling import kv_pool_factor
from yolo_attn.layers.block import ATTENTION_TYPES


TYPES = sorted(ATTENTION_TYPES)


def reference_pool(x: torch.Tensor, f: int) -> torch.Tensor:
    """Average of the real pixels in each f x f window (windows at the border are partial), by explicit loops."""
    B, C, H, W = x.shape
    out = x.new_zeros(B, C, math.ceil(H / f), math.ceil(W / f))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * f : (i + 1) * f, j * f : (j + 1) * f].mean(dim=(2, 3))
    return out


def reference_attention2d(layer: Attention2d, x: torch.Tensor, dtype: torch.dtype | None = torch.float64) -> torch.Tensor:
    """Attention2d that materialises softmax(Q K^T / sqrt(d)) V, written independently of the layer.

    Computed in `dtype` (None: the input's own, so gradients compare at the layer's precision); every cast is
    differentiable, so the result back-propagates into `x` and the layer's weights.
    """
    dtype = dtype or x.dtype
    x = x.to(dtype)
    B, C, H, W = x.shape
    if layer.pos is not None:
        x = x + build_sincos2d_pos_embed(H, W, C, dtype=dtype)
    f = kv_pool_factor(H, W, layer.kv_stride, layer.kv_tokens)
    xk = reference_pool(x, f) if f > 1 else x
    w = layer.qkv.weight.to(dtype)
    b = torch.zeros(len(w), dtype=dtype) if layer.qkv.bias is None else layer.qkv.bias.to(dtype)
    D, h, d = layer.dim, layer.num_heads, layer.head_dim
    q = x.flatten(2).transpose(1, 2) @ w[:D].T + b[:D]  # (B, N, D)
    k = xk.flatten(2).transpose(1, 2) @ w[D : 2 * D].T + b[D : 2 * D]
    v = xk.flatten(2).transpose(1, 2) @ w[2 * D :].T + b[2 * D :]
    split = lambda t: t.reshape(B, -1, h, d).transpose(1, 2)  # noqa: E731  (B, h, N, d)
    attn = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (attn @ split(v)).transpose(1, 2).reshape(B, H * W, D)
    out = out @ layer.proj.weight.to(dtype).T + (0 if layer.proj.bias is None else layer.proj.bias.to(dtype))
    return out.transpose(1, 2).reshape(B, -1, H, W)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def backward_nodes(t: torch.Tensor) -> set[str]:
    """Names of every autograd node behind `t`."""
    seen, stack, names = set(), [t.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(next_fn for next_fn, _ in fn.next_functions)
    return names


def top_level_ops(fn) -> list[str]:
    """Names of the aten ops `fn` calls directly (not those inside other ops), in order."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    return [e.name for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None]


CF_CASES = [
    dict(),
    dict(kv_stride=2),
    dict(kv_tokens=20),
    dict(pos=False),
    dict(c2=32, qkv_bias=True, proj_bias=True),
]


def trained_block(**kwargs) -> SelfAttentionBlock:
    """A block whose BatchNorm has non-trivial statistics and affine (one channel's scale exactly zero)."""
    torch.manual_seed(0)
    block = SelfAttentionBlock(64, head_dim=32, **kwargs)
    torch.nn.init.normal_(block.attn.proj.weight, std=0.2)
    with torch.no_grad():
        block.norm.running_mean.uniform_(-2, 2)
        block.norm.running_var.uniform_(0.5, 4)
        block.norm.weight.uniform_(0.5, 2)[0] = 0.0
        block.norm.bias.uniform_(-1, 1)
    return block.eval()
