"""Attention2d numerics: float64 references, attention maps, the channels-first route, fusing a norm, tracing."""

from __future__ import annotations

import pytest
import torch

from yolo_attn import Attention2d, SelfAttentionBlock
from layer_helpers import reference_attention2d, rel_err, backward_nodes, CF_CASES


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),  # global, 2 heads
        dict(reduction=2),  # spatial
        dict(kv_stride=2),  # efficient
        dict(kv_stride=3, pos=False),
        dict(kv_tokens=20),  # cap binds: 13x17 -> pooled
        dict(head_dim=16, kv_stride=2, kv_tokens=12),
        dict(qkv_bias=False, proj_bias=False),  # as in SelfAttentionBlock
        dict(kv_tokens=20, qkv_bias=False, proj_bias=False),
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "global",
)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "manual"])
def test_attention2d_matches_float64_reference(kwargs, fused):
    layer = Attention2d(64, **kwargs).eval()
    layer.fused_attn = fused
    x = torch.randn(2, 64, 13, 17)
    with torch.no_grad():
        assert rel_err(layer(x), reference_attention2d(layer, x)) < 1e-5


def test_attention_map_rows_sum_to_one_and_match_full_attention():
    layer = Attention2d(32, head_dim=16, kv_stride=2).eval()
    layer.fused_attn = False
    x = torch.randn(1, 32, 9, 11)
    queries = torch.tensor([[0, 0], [4, 5], [8, 10]])
    maps = layer.attention_map(x, queries)  # (B, h, Q, Hk, Wk)
    assert maps.shape == (1, 2, 3, 5, 6)
    assert torch.allclose(maps.sum(dim=(-1, -2)), torch.ones(1, 2, 3), atol=1e-6)


def test_bias_flags_are_validated():
    with pytest.raises(TypeError, match=r"Attention2d: qkv_bias must be"):
        Attention2d(64, qkv_bias="no")


@pytest.mark.parametrize("kwargs", CF_CASES, ids=["qkv", "pooled", "capped", "no-pos", "biases-c2"])
@pytest.mark.parametrize("batch", [1, 2])
def test_channels_first_inference_matches_the_training_path(kwargs, batch, channels_first_always):
    # Inference on a channels-first map reads it transposed and writes its output channels-first, the shortcut
    # added by the output product; training lays the map out as tokens. Same function, float64.
    torch.manual_seed(0)
    layer = Attention2d(64, head_dim=32, **kwargs).double().eval()
    x = torch.randn(batch, 64, 13, 17, dtype=torch.float64)
    shortcut = torch.randn(batch, layer.c2, 13, 17, dtype=torch.float64)
    for sc in (None, shortcut):
        with torch.no_grad():
            y = layer(x, sc)
        assert y.is_contiguous()  # channels-first, as the network around it runs
        torch.testing.assert_close(y, layer(x.requires_grad_(), sc).detach())
    torch.testing.assert_close(layer(x, shortcut) - shortcut, reference_attention2d(layer, x))


def test_shortcut_of_the_wrong_shape_is_named():
    layer = Attention2d(64, head_dim=32)
    with pytest.raises(ValueError, match=r"Attention2d: shortcut has shape \(1, 32, 8, 8\), the output \(1, 64, 8, 8\)"):
        layer(torch.randn(1, 64, 8, 8), torch.randn(1, 32, 8, 8))


def test_fuse_input_norm_checks_its_argument():
    layer = Attention2d(64, head_dim=32)
    with pytest.raises(TypeError, match="Attention2d: fuse_input_norm takes a BatchNorm2d"):
        layer.fuse_input_norm(torch.nn.LayerNorm(64))
    with pytest.raises(ValueError, match="Attention2d: the norm has 32 channels, layer was built for c1=64"):
        layer.fuse_input_norm(torch.nn.BatchNorm2d(32))
    layer.fuse_input_norm(torch.nn.BatchNorm2d(64))
    with pytest.raises(RuntimeError, match="Attention2d: a norm is already folded"):
        layer.fuse_input_norm(torch.nn.BatchNorm2d(64))


@pytest.mark.parametrize("kwargs", [dict(), dict(kv_tokens=20)], ids=["unpooled", "pooled"])
def test_eager_and_traced_projections_agree(kwargs):
    # Eagerly the products run as 1x1 convolutions (cuDNN is cheaper to call than cuBLAS, docs/benchmarks.md);
    # traced (export) as GEMMs, exported as MatMul. The same arithmetic either way.
    layer = Attention2d(64, head_dim=32, **kwargs).double().eval()
    x = torch.randn(2, 64, 12, 16, dtype=torch.float64)
    with torch.no_grad():
        eager = layer(x)
        traced = torch.jit.trace(layer, x)
    assert "aten::linear" in str(traced.inlined_graph) and "conv" not in str(traced.inlined_graph)
    conv = layer(x.requires_grad_())
    assert conv.grad_fn is not None and "ConvolutionBackward0" in backward_nodes(conv)
    torch.testing.assert_close(conv, eager)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), eager)
