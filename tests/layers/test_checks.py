"""Argument validation: clear errors naming the layer, the value and the fix."""

from __future__ import annotations

import pytest
import torch

from yolo_attn import EfficientSelfAttention, PositionalEncoding, PositionalEncoding2d, SelfAttention, SelfAttentionBlock, SpatialSelfAttention, TransformerEncoder, TransformerEncoderLayer


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: SelfAttentionBlock(64, "global"), ValueError, r"SelfAttentionBlock: unknown type 'global'; choose"),
        (lambda: SelfAttentionBlock(48, "standard", 32), ValueError, r"48 is not divisible by head_dim 32; use head_dim in \[8, 16\]"),
        (lambda: SelfAttentionBlock(64, "standard", 0), ValueError, r"head_dim must be >= 1, got 0"),
        (lambda: SelfAttentionBlock(64, "standard", 32.0), TypeError, r"head_dim must be an integer, got 32.0"),
        (lambda: SelfAttentionBlock(64, "spatial", 32, 3), ValueError, r"64 channels are not divisible by reduction 3"),
        (lambda: SelfAttentionBlock(64, "efficient", 32, None, -1), ValueError, r"kv_stride \(scale\) must be >= 1, got -1"),
        (lambda: SelfAttentionBlock(64, "standard", 32, None, None, "yes"), TypeError, r"pos must be True or False"),
        (lambda: SelfAttentionBlock(64, "standard", 32, None, None, True, -5), ValueError, r"kv_tokens must be >= 0"),
        (lambda: SelfAttentionBlock(64, "standard", 32, None, None, True, 0, 1.5), ValueError, r"attn_drop must be in"),
        (lambda: SelfAttentionBlock(True), TypeError, r"c1 \(input channels\) must be an integer"),
        (lambda: SelfAttentionBlock(66, "standard", 2), ValueError, r"pos=True needs channels divisible by 4, got 66"),
        (lambda: SelfAttention(64, 5), ValueError, r"SelfAttention: dim 64 is not divisible by num_heads 5"),
        (lambda: SpatialSelfAttention(64, 32, 0), ValueError, r"reduction must be >= 1"),
        (lambda: EfficientSelfAttention(64, 24), ValueError, r"not divisible by head_dim 24"),
        (lambda: TransformerEncoderLayer(64, 2, 128, 0.1, "tanh"), ValueError, r"unknown activation 'tanh'"),
        (lambda: TransformerEncoder(64, 2, 0), ValueError, r"TransformerEncoder: num_layers must be >= 1"),
        (lambda: PositionalEncoding2d(30), ValueError, r"channels 30 must be divisible by 4"),
    ],
)
def test_bad_arguments_raise_clear_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_wrong_input_channels_and_length_are_named():
    with pytest.raises(ValueError, match=r"SelfAttentionBlock: input has 32 channels, layer was built for c1=64"):
        SelfAttentionBlock(64)(torch.randn(1, 32, 4, 4))
    with pytest.raises(ValueError, match=r"sequence length 12 exceeds max_len=10; raise max_len"):
        PositionalEncoding(8, 10)(torch.randn(1, 12, 8))
