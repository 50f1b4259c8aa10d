"""Layer tests: shapes, numerics against a float64 reference, identity at insertion, gradients, validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from yolo_attn import (
    Attention2d,
    EfficientSelfAttention,
    PositionalEncoding,
    PositionalEncoding2d,
    SelfAttention,
    SelfAttentionBlock,
    SpatialSelfAttention,
    TransformerEncoder,
    TransformerEncoderLayer,
    build_sincos2d_pos_embed,
)
from yolo_attn.attention2d import kv_pool_factor
from yolo_attn.block import ATTENTION_TYPES
from yolo_attn.registry import layers

TYPES = sorted(ATTENTION_TYPES)


def reference_pool(x: torch.Tensor, f: int) -> torch.Tensor:
    """Average of the real pixels in each f x f window (windows at the border are partial), by explicit loops."""
    B, C, H, W = x.shape
    out = x.new_zeros(B, C, math.ceil(H / f), math.ceil(W / f))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * f : (i + 1) * f, j * f : (j + 1) * f].mean(dim=(2, 3))
    return out


def reference_attention2d(layer: Attention2d, x: torch.Tensor) -> torch.Tensor:
    """float64 Attention2d that materialises softmax(Q K^T / sqrt(d)) V, written independently of the layer."""
    x = x.double()
    B, C, H, W = x.shape
    if layer.pos is not None:
        x = x + build_sincos2d_pos_embed(H, W, C, dtype=torch.float64)
    f = kv_pool_factor(H, W, layer.kv_stride, layer.kv_tokens)
    xk = reference_pool(x, f) if f > 1 else x
    w = layer.qkv.weight.double()
    b = torch.zeros(len(w), dtype=torch.float64) if layer.qkv.bias is None else layer.qkv.bias.double()
    D, h, d = layer.dim, layer.num_heads, layer.head_dim
    q = x.flatten(2).transpose(1, 2) @ w[:D].T + b[:D]  # (B, N, D)
    k = xk.flatten(2).transpose(1, 2) @ w[D : 2 * D].T + b[D : 2 * D]
    v = xk.flatten(2).transpose(1, 2) @ w[2 * D :].T + b[2 * D :]
    split = lambda t: t.reshape(B, -1, h, d).transpose(1, 2)  # noqa: E731  (B, h, N, d)
    attn = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (attn @ split(v)).transpose(1, 2).reshape(B, H * W, D)
    out = out @ layer.proj.weight.double().T + (0 if layer.proj.bias is None else layer.proj.bias.double())
    return out.transpose(1, 2).reshape(B, -1, H, W)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


# ---------------------------------------------------------------- shapes, for every registered YAML layer


@pytest.mark.parametrize("name", sorted(layers()))
def test_registered_layer_shape_and_backward(name):
    layer = layers()[name](64)
    x = torch.randn(2, 64, 13, 17, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("attn_type", TYPES)
@pytest.mark.parametrize("hw", [(8, 8), (13, 17), (1, 1), (2, 31)])
def test_block_shapes(attn_type, hw):
    block = SelfAttentionBlock(64, attn_type)
    x = torch.randn(2, 64, *hw)
    assert block(x).shape == x.shape


def test_sequence_layers_shapes():
    x = torch.randn(2, 10, 64)
    assert SelfAttention(64, 2)(x).shape == x.shape
    assert TransformerEncoderLayer(64, 2, 128)(x).shape == x.shape
    assert TransformerEncoder(64, 2, 3, 128)(x).shape == x.shape
    assert PositionalEncoding(64, 100)(x).shape == x.shape
    assert PositionalEncoding(7, 100, 0.0)(torch.zeros(1, 5, 7)).shape == (1, 5, 7)  # odd width


# ---------------------------------------------------------------- numerics against float64 references


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


def test_pooling_matches_reference_at_odd_sizes():
    x = torch.randn(1, 4, 13, 17)
    pooled = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
    assert pooled.shape[-2:] == (7, 9)
    assert torch.allclose(pooled, reference_pool(x, 2), atol=1e-6)


def test_kv_pool_factor_caps_tokens():
    assert kv_pool_factor(80, 80, 1, 400) == 4  # P3 at 640 px with the shipped cap
    assert kv_pool_factor(40, 40, 1, 400) == 2  # P4 at 640 px
    assert kv_pool_factor(20, 20, 1, 400) == 1  # cap does not bind: exact global attention
    for cap in (400, 1600):
        for h, w in [(1024, 1024), (13, 17), (999, 3), (4096, 4096), (44, 44)]:
            f = kv_pool_factor(h, w, 1, cap)
            assert math.ceil(h / f) * math.ceil(w / f) <= cap
            assert f == 1 or math.ceil(h / (f - 1)) * math.ceil(w / (f - 1)) > cap  # the smallest such factor
    assert kv_pool_factor(80, 80, 2, 0) == 2


def test_attention_map_rows_sum_to_one_and_match_full_attention():
    layer = Attention2d(32, head_dim=16, kv_stride=2).eval()
    layer.fused_attn = False
    x = torch.randn(1, 32, 9, 11)
    queries = torch.tensor([[0, 0], [4, 5], [8, 10]])
    maps = layer.attention_map(x, queries)  # (B, h, Q, Hk, Wk)
    assert maps.shape == (1, 2, 3, 5, 6)
    assert torch.allclose(maps.sum(dim=(-1, -2)), torch.ones(1, 2, 3), atol=1e-6)


# ---------------------------------------------------------------- the block: identity, gradients, modes


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


@pytest.mark.parametrize("name", sorted(layers()))
def test_compiles_fullgraph_without_graph_breaks(name):
    layer = layers()[name](64).eval()
    compiled = torch.compile(layer, fullgraph=True, backend="eager")  # fullgraph raises on any graph break
    x = torch.randn(1, 64, 9, 13)
    with torch.no_grad():
        assert torch.allclose(compiled(x), layer(x), atol=1e-5)


def test_compiles_with_inductor():
    block = SelfAttentionBlock(64, "efficient").eval()
    torch.nn.init.normal_(block.attn.proj.weight, std=0.05)
    compiled = torch.compile(block, fullgraph=True)
    x = torch.randn(1, 64, 9, 13)
    with torch.no_grad():
        assert torch.allclose(compiled(x), block(x), atol=1e-4)


def test_pos_table_cache_follows_size_and_stays_out_of_checkpoints():
    pe = PositionalEncoding2d(16)
    a = pe(torch.zeros(1, 16, 4, 5))
    b = pe(torch.zeros(1, 16, 6, 3))
    assert torch.equal(a[0], build_sincos2d_pos_embed(4, 5, 16))
    assert torch.equal(b[0], build_sincos2d_pos_embed(6, 3, 16))
    assert pe.__getstate__()["_cache"] is None
    assert not pe.state_dict()  # fixed table: nothing persistent


def test_2d_position_distinguishes_pixels():
    table = build_sincos2d_pos_embed(20, 30, 64).flatten(1).T  # (N, C)
    assert torch.unique(table, dim=0).shape[0] == 600


# ---------------------------------------------------------------- argument validation


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


def test_same_seed_same_output():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        block = SelfAttentionBlock(32, "efficient")
        torch.nn.init.normal_(block.attn.proj.weight)
        outs.append(block.eval()(torch.randn(1, 32, 7, 9)))
    assert torch.equal(*outs)


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


@pytest.mark.parametrize("kwargs", [dict(), dict(kv_stride=2), dict(kv_tokens=20)], ids=["qkv", "pooled", "capped"])
def test_qkv_split_has_no_zero_filling_backward(kwargs):
    # q/k/v are unbound and the weight split, never indexed or sliced: SelectBackward/SliceBackward would each
    # zero-fill a full-size gradient and add them up (extra kernels in every training step).
    layer = Attention2d(64, **kwargs)
    names = backward_nodes(layer(torch.randn(2, 64, 13, 17)))
    assert {"UnbindBackward0", "ScaledDotProductFlashAttentionForCpuBackward0"} & names
    assert not names & {"SelectBackward0", "SliceBackward0"}, names


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


def test_bias_flags_are_validated():
    with pytest.raises(TypeError, match=r"Attention2d: qkv_bias must be"):
        Attention2d(64, qkv_bias="no")


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


@pytest.mark.parametrize("size, pooled_by", [((12, 16), "MeanBackward1"), ((13, 17), "AvgPool2DBackward0")])
def test_pooling_averages_windows_as_avg_pool2d(size, pooled_by):
    # Maps that the factor divides pool by a mean over a view (cheap backward); others through avg_pool2d with
    # partial border windows. Both equal avg_pool2d(ceil_mode=True, count_include_pad=False).
    tokens = torch.randn(2, *size, 8, dtype=torch.float64, requires_grad=True)
    pooled = Attention2d.pool_tokens(tokens, 4)
    ref = F.avg_pool2d(tokens.permute(0, 3, 1, 2), 4, 4, ceil_mode=True, count_include_pad=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(pooled, ref)
    assert pooled_by in backward_nodes(pooled)


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


def top_level_ops(fn) -> list[str]:
    """Names of the aten ops `fn` calls directly (not those inside other ops), in order."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    return [e.name for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None]


@pytest.fixture
def channels_first_always(monkeypatch):
    """Inference reads every channels-first map transposed, however small (the real threshold is for GPU sizes)."""
    import yolo_attn.layers.switches as switches

    monkeypatch.setattr(switches, "CHANNELS_FIRST_MIN", 0)


CF_CASES = [
    dict(),
    dict(kv_stride=2),
    dict(kv_tokens=20),
    dict(pos=False),
    dict(c2=32, qkv_bias=True, proj_bias=True),
]


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


def test_shortcut_of_the_wrong_shape_is_named():
    layer = Attention2d(64, head_dim=32)
    with pytest.raises(ValueError, match=r"Attention2d: shortcut has shape \(1, 32, 8, 8\), the output \(1, 64, 8, 8\)"):
        layer(torch.randn(1, 64, 8, 8), torch.randn(1, 32, 8, 8))


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


def test_position_cache_follows_an_edited_shift():
    pe = PositionalEncoding2d(8)
    pe.shift = torch.zeros(8)
    t0 = pe.table(4, 5, torch.device("cpu"), torch.float32).clone()
    pe.shift += 1.0  # in place: the cached table must not go stale
    torch.testing.assert_close(pe.table(4, 5, torch.device("cpu"), torch.float32), t0 + 1)


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


def test_compiled_training_graph_keeps_the_gemm():
    # The 1x1-convolution form is for eager steps (host time); compiled, the plain GEMM is what inductor lays out best.
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    layer = Attention2d(64, head_dim=32, kv_tokens=20)
    for dynamic in (False, True):  # symbolic sizes too (a second image size): the key/value cap still traces whole
        torch.compile(layer, backend=capture, fullgraph=True, dynamic=dynamic)(torch.randn(2, 64, 12, 16, requires_grad=True))
    targets = " ".join(str(n.target) for g in graphs for n in g.graph.nodes)
    assert len(graphs) == 2 and "linear" in targets and "conv2d" not in targets, targets
