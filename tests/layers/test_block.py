"""SelfAttentionBlock: identity at insertion, learning, modes, autocast, and BatchNorm fusing."""

from __future__ import annotations

import pytest
import torch

from yolo_attn import SelfAttentionBlock
from yolo_attn.integration.registry import layers
from layer_helpers import TYPES, rel_err, backward_nodes, top_level_ops, trained_block


@pytest.mark.parametrize("attn_type", TYPES)
@pytest.mark.parametrize("hw", [(8, 8), (13, 17), (1, 1), (2, 31)])
def test_block_shapes(attn_type, hw):
    block = SelfAttentionBlock(64, attn_type)
    x = torch.randn(2, 64, *hw)
    assert block(x).shape == x.shape


@pytest.mark.parametrize("attn_type", TYPES)
def test_block_is_identity_at_insertion(attn_type):
    block = SelfAttentionBlock(64, attn_type).train()
    x = torch.randn(2, 64, 13, 17) * 10
    assert torch.equal(block(x), x)
    assert torch.equal(block.eval()(x), x)


@pytest.mark.parametrize("attn_type", TYPES)
def test_every_parameter_learns_after_one_step_with_weight_decay(attn_type):
    block = SelfAttentionBlock(64, attn_type)
    opt = torch.optim.SGD(block.parameters(), lr=0.1, weight_decay=5e-4)  # decay pulls zero-init weights to 0

    def step():
        opt.zero_grad()
        x = torch.randn(2, 64, 9, 11)
        (block(x) - x.flip(-1)).square().mean().backward()
        opt.step()

    step()  # first step: only the zero-initialised projection has a gradient...
    assert block.attn.proj.weight.abs().sum() > 0  # ...and moves away from zero despite weight decay
    step()  # second step: gradient reaches every parameter
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"


def test_dropout_only_in_training():
    block = SelfAttentionBlock(64, "standard", 32, None, None, True, 0, 0.5)
    torch.nn.init.normal_(block.attn.proj.weight)
    x = torch.randn(1, 64, 6, 6)
    block.eval()
    assert torch.equal(block(x), block(x))
    block.train()
    assert not torch.equal(block(x), block(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("attn_type", TYPES)
def test_autocast_matches_fp32(attn_type, dtype):
    block = SelfAttentionBlock(64, attn_type).eval()
    torch.nn.init.normal_(block.attn.proj.weight, std=0.05)
    x = torch.randn(2, 64, 10, 12)
    with torch.no_grad():
        ref = block(x)
        with torch.autocast("cpu", dtype=dtype):
            out = block(x)
    assert torch.isfinite(out).all()
    assert rel_err(out, ref) < (2e-2 if dtype == torch.bfloat16 else 4e-3)


def test_block_projections_have_no_biases_and_still_learn():
    # k/v/output biases are redundant in the block (softmax shift, constant through softmax, BatchNorm after): none
    # are created, and the zero-initialised block is still an identity that gets a gradient into every weight.
    block = SelfAttentionBlock(64, "standard", 64, None, None, True, 20)
    assert block.attn.qkv.bias is None and block.attn.proj.bias is None
    x = torch.randn(2, 64, 9, 11)
    assert torch.equal(block(x), x)
    block(x).square().sum().backward()
    assert block.attn.proj.weight.grad.abs().sum() > 0  # the zero start moves at step one
    names = backward_nodes(block(x))
    assert not {n for n in names if "Sum" in n or "Expand" in n}, names  # no bias-gradient reductions


@pytest.mark.parametrize("kwargs", [dict(), dict(type="efficient"), dict(kv_tokens=20), dict(pos=False)],
                         ids=["standard", "efficient", "capped", "no-pos"])
@pytest.mark.parametrize("path", ["tokens", "channels-first", "channels-last"])
def test_fused_block_computes_the_same(kwargs, path, monkeypatch):
    import copy

    import yolo_attn.layers.switches as switches

    if path == "channels-first":
        monkeypatch.setattr(switches, "CHANNELS_FIRST_MIN", 0)
    block = trained_block(**kwargs).double()
    fused = copy.deepcopy(block).fuse()
    assert fused.norm is None and fused.attn.in_scale is not None
    x = torch.randn(2, 64, 13, 17, dtype=torch.float64)
    if path == "channels-last":
        x = x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), block(x))
    assert fused.fuse() is fused  # fusing again changes nothing
    with torch.no_grad():
        torch.testing.assert_close(fused(x), block(x))
    assert "batch_norm" not in " ".join(top_level_ops(lambda: fused(x)))


def test_fused_block_keeps_its_cache_lean_and_its_checkpoint_whole():
    block = trained_block().fuse()
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        y = block(x)
    # the folded shift rides in the position table's cache: one table, not a table and a shifted copy
    assert block.attn.in_shift is None and block.attn.pos.shift is not None
    tensors = [v for v in vars(block.attn).values() if isinstance(v, torch.Tensor)]
    assert not tensors, tensors
    state = block.state_dict()
    assert {"attn.in_scale", "attn.pos.shift"} <= set(state) and not any(k.startswith("norm.") for k in state)
    again = SelfAttentionBlock(64, head_dim=32).fuse()  # a fused block loads a fused checkpoint
    again.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), y)


def test_fusing_and_moving_under_inference_mode():
    # Fused, or moved (new buffers), inside torch.inference_mode(): inference tensors keep no version counter.
    block = trained_block()
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        want = block(x)
    with torch.inference_mode():
        fused = block.fuse().to(torch.float64).to(torch.float32)
        torch.testing.assert_close(fused(x), want)
    torch.testing.assert_close(fused(x), want)


def _trained_ffn_block() -> SelfAttentionBlock:
    """A block with the feed-forward network, both norms with non-trivial statistics, every weight non-zero."""
    block = trained_block(mlp_ratio=2.0)
    norm, _, _, out = block.ffn
    torch.nn.init.normal_(out.weight, std=0.2)
    with torch.no_grad():
        norm.running_mean.uniform_(-2, 2)
        norm.running_var.uniform_(0.5, 4)
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    return block.eval()


def test_feed_forward_form_is_identity_at_insertion_and_learns():
    block = SelfAttentionBlock(64, "standard", 32, None, None, True, 0, 0.0, 2.0).train()
    assert block.ffn[1].out_channels == 128 and "mlp_ratio=2" in repr(block)
    x = torch.randn(2, 64, 9, 11)
    assert torch.equal(block(x), x)
    opt = torch.optim.SGD(block.parameters(), lr=0.1, weight_decay=5e-4)
    for _ in range(3):
        opt.zero_grad()
        (block(x) - x.flip(-1)).square().mean().backward()
        opt.step()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"
    assert SelfAttentionBlock(64).ffn is None  # attention alone by default


def test_feed_forward_form_fuses_to_the_same_output_and_reloads():
    import copy

    block = _trained_ffn_block().double()
    fused = copy.deepcopy(block).fuse()
    assert isinstance(fused.ffn[0], torch.nn.Identity) and fused.ffn[1].bias is not None
    x = torch.randn(2, 64, 13, 17, dtype=torch.float64)
    with torch.no_grad():
        y = block(x)
        assert (y - x).abs().max() > 0.1  # the feed-forward branch contributes
        torch.testing.assert_close(fused(x), y)
        assert "batch_norm" not in " ".join(top_level_ops(lambda: fused(x)))
    again = SelfAttentionBlock(64, head_dim=32, mlp_ratio=2.0).double().fuse()  # a fused block loads a fused checkpoint
    again.load_state_dict(fused.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), y)


@pytest.mark.parametrize("ratio, error", [(-1.0, ValueError), (16.0, ValueError), ("2", TypeError), (True, TypeError)])
def test_feed_forward_ratio_is_checked(ratio, error):
    with pytest.raises(error, match=r"SelfAttentionBlock: mlp_ratio must be"):
        SelfAttentionBlock(64, mlp_ratio=ratio)


def test_block_pickled_before_the_feed_forward_option_loads_as_attention_alone():
    block = trained_block()
    state = {**vars(block), "_modules": {k: v for k, v in block._modules.items() if k != "ffn"}}
    del state["mlp_ratio"]  # what a block pickled by yolo-attn 0.1.0 holds
    old = SelfAttentionBlock.__new__(SelfAttentionBlock)
    old.__setstate__(state)
    x = torch.randn(2, 64, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(old(x), block(x))
    assert old.ffn is None and "mlp_ratio" not in repr(old) and old.fuse().ffn is None
