"""Guards on the autograd graph and the ops run (profiler, backward nodes): no copies, no layout passes.

These check structure, not numbers; the numbers are checked in the per-module tests."""

from __future__ import annotations

import pytest
import torch

from yolo_attn import Attention2d
from layer_helpers import backward_nodes, top_level_ops


@pytest.mark.parametrize("kwargs", [dict(), dict(kv_stride=2), dict(kv_tokens=20)], ids=["qkv", "pooled", "capped"])
def test_qkv_split_has_no_zero_filling_backward(kwargs):
    # q/k/v are unbound and the weight split, never indexed or sliced: SelectBackward/SliceBackward would each
    # zero-fill a full-size gradient and add them up (extra kernels in every training step).
    layer = Attention2d(64, **kwargs)
    names = backward_nodes(layer(torch.randn(2, 64, 13, 17)))
    assert {"UnbindBackward0", "ScaledDotProductFlashAttentionForCpuBackward0"} & names
    assert not names & {"SelectBackward0", "SliceBackward0"}, names


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_tokens_take_one_pass_and_no_copies(memory_format):
    # Position is added in the pass that moves the map to token layout, so the GEMMs read contiguous 2-D tokens:
    # no .contiguous() copy (CloneBackward) in front of them, whichever memory format the network runs in.
    layer = Attention2d(64, head_dim=32, kv_tokens=20)
    x = torch.randn(2, 64, 12, 16).to(memory_format=memory_format)
    tokens = layer.tokens(x)
    assert tokens.shape == (2, 12, 16, 64) and tokens.is_contiguous()
    torch.testing.assert_close(tokens, x.permute(0, 2, 3, 1) + layer.pos.table(12, 16, x.device, x.dtype).permute(1, 2, 0))
    names = backward_nodes(layer(x.requires_grad_()))
    assert not names & {"CloneBackward0", "UnsafeViewBackward0"}, names


def test_unpooled_backward_makes_no_copies():
    # q/k/v are unbound along their own axis, so the stacked gradient is already laid out as the projection wrote
    # its output: no autograd node between the attention and the projection copies (the projection's own backward,
    # a library kernel, is left out: on CPU oneDNN reorders inside it).
    from torch.profiler import ProfilerActivity, profile

    layer = Attention2d(64, head_dim=32)
    x = torch.randn(2, 64, 12, 16).to(memory_format=torch.channels_last).requires_grad_()
    y = layer(x)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        y.backward(torch.ones_like(y))
    copying, ran = set(), set()
    for e in prof.events():
        if e.name.startswith("autograd::engine::evaluate_function: "):
            node = e.name.rsplit(" ", 1)[-1]
            ran.add(node)
            stack = list(e.cpu_children)
            while stack:
                c = stack.pop()
                stack.extend(c.cpu_children)
                if c.name in ("aten::copy_", "aten::clone") and node != "ConvolutionBackward0":
                    copying.add(node)
    assert "UnbindBackward0" in ran, ran
    assert not copying, copying


def test_channels_first_inference_makes_no_layout_pass(channels_first_always):
    layer = Attention2d(64, head_dim=32, kv_tokens=20, qkv_bias=False, proj_bias=False).eval()
    x = torch.randn(2, 64, 12, 16)
    with torch.no_grad():
        layer(x, x)  # builds the position table
        ops = top_level_ops(lambda: layer(x, x))
    assert ops.count("aten::bmm") == 2 and ops.count("aten::baddbmm") == 1, ops
    assert not {"aten::contiguous", "aten::clone", "aten::copy_", "aten::permute", "aten::conv2d"} & set(ops), ops


def test_small_maps_and_training_take_the_token_path():
    # Below CHANNELS_FIRST_MIN elements inference is host-bound on a GPU: tokens and cuDNN products, as in training.
    layer = Attention2d(64, head_dim=32).eval()
    x = torch.randn(1, 64, 12, 16)
    with torch.no_grad():
        ops = top_level_ops(lambda: layer(x))
    assert "aten::conv2d" in ops and "aten::bmm" not in ops, ops
    ops = top_level_ops(lambda: layer(x.requires_grad_()))
    assert "aten::conv2d" in ops and "aten::bmm" not in ops, ops
