"""Multi-head self-attention on sequences, and the one function every layer attends through."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_bool, check_channels, check_float, check_int
from .switches import use_fused_attn


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0, fused: bool = True) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, heads, N, d) tensors; returns (B, heads, Nq, d).

    `fused=True` calls `F.scaled_dot_product_attention`, whose flash / memory-efficient / cuDNN kernels need the
    last dim contiguous (callers lay q, k, v out that way) and never build the Nq x Nk matrix. `fused=False` is
    the same function written out, for tests and for reading attention weights.
    """
    if fused:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    attn = F.dropout(attention_weights(q, k), p=dropout_p)  # (B, h, Nq, Nk), float32 or wider
    return attn.to(v.dtype) @ v


def attention_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Return softmax(q k^T / sqrt(d)) for (B, heads, Nq, d) queries: only the rows asked for are built.

    Logits and softmax are computed in float32 (float64 stays float64), autocast or not, as the fused kernels
    accumulate them: in fp16 q k^T overflows to inf, and the softmax to NaN, once activations reach ~1e3.
    """
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(q.device.type, enabled=False):
        # Scale q before the product, not the logits after it: keeps the logits' magnitude down.
        return ((q.to(dtype) * q.shape[-1] ** -0.5) @ k.to(dtype).transpose(-2, -1)).softmax(dim=-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention over a token sequence, through the fused SDPA kernel.

    Positional signature: `SelfAttention(dim, num_heads=8, qkv_bias=False, attn_drop=0.0, proj_drop=0.0)`.

    Args:
        dim (int): channels C of the input, divisible by `num_heads`.
        num_heads (int): attention heads; head dimension is dim / num_heads (32 or 64 suits the fused kernels).
        qkv_bias (bool): add a bias to the fused q/k/v projection.
        attn_drop (float): dropout on attention weights (training only).
        proj_drop (float): dropout after the output projection (training only).

    Shapes: (B, N, C) -> (B, N, C).

    Examples:
        >>> attn = SelfAttention(64, num_heads=2)
        >>> attn(torch.randn(2, 10, 64)).shape
        torch.Size([2, 10, 64])
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        name = type(self).__name__
        self.dim = check_int(name, "dim", dim)
        self.num_heads = check_int(name, "num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"{name}: dim {dim} is not divisible by num_heads {num_heads}; pick num_heads dividing {dim}.")
        self.head_dim = dim // num_heads
        self.attn_drop = check_float(name, "attn_drop", attn_drop)
        self.fused_attn = use_fused_attn()
        self.qkv = nn.Linear(dim, 3 * dim, bias=check_bool(name, "qkv_bias", qkv_bias))
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(check_float(name, "proj_drop", proj_drop))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        check_channels(type(self).__name__, C, self.dim, name="dim")
        # (B, N, 3C) -> (3, B, heads, N, d): a view whose last dim stays contiguous, as the fused kernels need.
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = attend(q, k, v, self.attn_drop if self.training else 0.0, self.fused_attn)  # (B, heads, N, d)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))
