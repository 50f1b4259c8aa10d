"""Fixtures of the layer tests: the naive maths of Attention2d in the input's dtype, and a forced channels-first route."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from yolo_attn import Attention2d, build_sincos2d_pos_embed
from yolo_attn.layers.pooling import kv_pool_factor


def reference_attention2d(layer: Attention2d, x: torch.Tensor) -> torch.Tensor:
    """Attention2d as plain maths: softmax(Q K^T / sqrt(d)) V materialised, keys pooled by avg_pool2d (ceil mode)."""
    B, C, H, W = x.shape
    if layer.pos is not None:
        x = x + build_sincos2d_pos_embed(H, W, C, dtype=x.dtype)
    f = kv_pool_factor(H, W, layer.kv_stride, layer.kv_tokens)
    xk = F.avg_pool2d(x, f, f, ceil_mode=True, count_include_pad=False) if f > 1 else x
    w, D, h, d = layer.qkv.weight, layer.dim, layer.num_heads, layer.head_dim
    b = torch.zeros(len(w), dtype=x.dtype) if layer.qkv.bias is None else layer.qkv.bias
    q = x.flatten(2).transpose(1, 2) @ w[:D].T + b[:D]  # (B, N, D)
    k = xk.flatten(2).transpose(1, 2) @ w[D : 2 * D].T + b[D : 2 * D]
    v = xk.flatten(2).transpose(1, 2) @ w[2 * D :].T + b[2 * D :]
    split = lambda t: t.reshape(B, -1, h, d).transpose(1, 2)  # noqa: E731  (B, h, N, d)
    attn = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (attn @ split(v)).transpose(1, 2).reshape(B, H * W, D)
    out = out @ layer.proj.weight.T + (0 if layer.proj.bias is None else layer.proj.bias)
    return out.transpose(1, 2).reshape(B, -1, H, W)


@pytest.fixture
def reference():
    return reference_attention2d


@pytest.fixture
def channels_first_always(monkeypatch):
    """Inference reads every channels-first map transposed, however small (the real threshold is for GPU sizes)."""
    import yolo_attn.layers.switches as switches

    monkeypatch.setattr(switches, "CHANNELS_FIRST_MIN", 0)

