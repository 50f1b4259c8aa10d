"""SelfAttention on sequences against a float64 reference."""

from __future__ import annotations

import torch

from yolo_attn import PositionalEncoding, SelfAttention, TransformerEncoder, TransformerEncoderLayer
from layer_helpers import rel_err


def test_sequence_layers_shapes():
    x = torch.randn(2, 10, 64)
    assert SelfAttention(64, 2)(x).shape == x.shape
    assert TransformerEncoderLayer(64, 2, 128)(x).shape == x.shape
    assert TransformerEncoder(64, 2, 3, 128)(x).shape == x.shape
    assert PositionalEncoding(64, 100)(x).shape == x.shape
    assert PositionalEncoding(7, 100, 0.0)(torch.zeros(1, 5, 7)).shape == (1, 5, 7)  # odd width


def test_self_attention_matches_float64_reference():
    layer = SelfAttention(64, num_heads=4, qkv_bias=True).eval()
    x = torch.randn(2, 11, 64)
    w, b = layer.qkv.weight.double(), layer.qkv.bias.double()
    qkv = (x.double() @ w.T + b).reshape(2, 11, 3, 4, 16).permute(2, 0, 3, 1, 4)
    attn = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / 4.0, dim=-1)
    ref = (attn @ qkv[2]).transpose(1, 2).reshape(2, 11, 64) @ layer.proj.weight.double().T + layer.proj.bias.double()
    for fused in (True, False):
        layer.fused_attn = fused
        with torch.no_grad():
            assert rel_err(layer(x), ref) < 1e-5
