"""The layers gpu_check.py measures, built as a YAML row would build them, their inputs, one forward + backward,
and a naive attention (the (B, heads, Nq, Nk) matrix written out) to swap in as the reference."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import _common  # noqa: F401  (the repository root on sys.path)
import torch
import torch.nn as nn
import torch.nn.functional as F

import yolo_attn
from yolo_attn import Attention2d, SelfAttention, SelfAttentionBlock, TransformerEncoderLayer


def unzero(module: nn.Module) -> nn.Module:
    """Give zero-initialised output projections random weights, so the attention path affects the output."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.Linear) and not m.weight.detach().any():
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
    return module


def default_row_args() -> list:
    """The YAML arguments (after c1) of the first SelfAttentionBlock row in the shipped default config."""
    import yaml  # PyYAML comes with Ultralytics

    cfg = yaml.safe_load((Path(yolo_attn.__file__).parent / "configs" / "yolov8-attn.yaml").read_text())
    return next(args for _, _, module, args in cfg["head"] if module == "SelfAttentionBlock")


def make_layer(kind: str, c: int) -> tuple[nn.Module, bool]:
    """Return (layer, takes_tokens) for a layer type at c channels."""
    if kind in ("standard", "spatial", "efficient"):
        return SelfAttentionBlock(c, kind), False
    if kind == "default":  # the row the shipped yolov8-attn.yaml uses
        return SelfAttentionBlock(c, *default_row_args()), False
    if kind == "SelfAttention":
        return SelfAttention(c, num_heads=max(1, c // 32)), True
    if kind == "TransformerEncoderLayer":  # class defaults otherwise (dropout 0.1): fed a (B, C, H, W) map
        return TransformerEncoderLayer(c, nhead=max(1, c // 32), dim_feedforward=4 * c), False
    raise ValueError(kind)


TYPES = ("standard", "spatial", "efficient", "default", "SelfAttention", "TransformerEncoderLayer")


def make_input(shape, batch, tokens, device, dtype, requires_grad=True, seed=0):
    c, h, w = shape
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((batch, h * w, c) if tokens else (batch, c, h, w), generator=g).to(device, dtype)
    return x.requires_grad_(requires_grad)


def naive_attend(q, k, v, dropout_p: float = 0.0, fused: bool = True):
    """softmax(q k^T / sqrt(d)) v with the (B, heads, Nq, Nk) matrix built explicitly (the reference)."""
    attn = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1)
    if dropout_p:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


@contextlib.contextmanager
def naive_attention():
    """Route every yolo_attn layer through `naive_attend` instead of SDPA, for the duration of the block."""
    # The modules that call `attend` by their global name, wherever the package keeps them.
    _attention_mod, _attention2d_mod = sys.modules[SelfAttention.__module__], sys.modules[Attention2d.__module__]
    saved = _attention_mod.attend, _attention2d_mod.attend
    _attention_mod.attend = _attention2d_mod.attend = naive_attend
    try:
        yield
    finally:
        _attention_mod.attend, _attention2d_mod.attend = saved


def amp_ctx(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def fwd_bwd(m: nn.Module, x: torch.Tensor, device, amp: bool, grad: torch.Tensor | None = None):
    m.zero_grad(set_to_none=True)
    x.grad = None
    with amp_ctx(device, amp):
        out = m(x)
    if grad is None:
        grad = torch.randn_like(out)
    out.backward(grad)
    return out, grad
