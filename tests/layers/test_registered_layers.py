"""Every registered YAML layer: shapes, backward, torch.compile (eager and inductor), fuzzed arguments (a working
layer or a named error), numerics against float64 and under low-precision autocast, and determinism.

CPU only and bounded: the fuzzer stops at `max_examples`.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arg_strategies import assert_named, implausible, plausible
from yolo_attn import Attention2d, SelfAttentionBlock
from yolo_attn.integration.registry import layers, yaml_args

NAMES = sorted(layers())
GOOD_C1 = [1, 2, 3, 4, 8, 12, 16, 24, 32, 64]
BAD_C1 = [0, -4, True, 4.0, "64", None, [64]]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is as fast, and steadier on a shared machine (no spinning worker threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(layers()))
def test_registered_layer_shape_and_backward(name):
    layer = layers()[name](64)
    x = torch.randn(2, 64, 13, 17, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all()


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


def test_same_seed_same_output():
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        block = SelfAttentionBlock(32, "efficient")
        torch.nn.init.normal_(block.attn.proj.weight)
        outs.append(block.eval()(torch.randn(1, 32, 7, 9)))
    assert torch.equal(*outs)


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


# ---------------------------------------------------------------- fuzzing every registered layer's arguments

@st.composite
def layer_case(draw, name: str):
    """(c1, args, input shape, training): args as a YAML row gives them, positionally, sometimes one too many."""
    spec = yaml_args(layers()[name])
    c1 = draw(st.sampled_from(BAD_C1)) if draw(st.integers(0, 7)) == 0 else draw(st.sampled_from(GOOD_C1))
    args = []
    for j in range(draw(st.integers(0, len(spec) + 1))):
        if j == len(spec):
            args.append(draw(st.integers(0, 64)))  # one more than the layer takes
            continue
        arg, default = spec[j]
        args.append(draw(st.one_of(st.just(default), plausible(arg, default), implausible(arg))))
    c = c1 if draw(st.integers(0, 3)) else draw(st.sampled_from([4, 8, 16]))  # sometimes the wrong channels
    shape = (draw(st.integers(1, 2)), c, draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return c1, args, shape, draw(st.booleans())


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_arguments_build_and_run_or_raise_a_named_error(name, data):
    """Anything else than a working layer or a TypeError/ValueError naming it (IndexError, RuntimeError, ...) fails."""
    c1, args, shape, train = data.draw(layer_case(name))
    try:
        layer = layers()[name](c1, *args)
    except (TypeError, ValueError) as e:
        assert_named(e, name, "yolo-attn")
        return
    assert isinstance(c1, int) and not isinstance(c1, bool) and c1 >= 1, f"{name} accepted c1={c1!r}"
    layer.train(train)
    x = torch.randn(shape, requires_grad=True)
    B, C, H, W = shape
    try:
        y = layer(x)
    except ValueError as e:
        assert_named(e, name)
        assert C != c1 or (train and B * H * W == 1), f"{name}{tuple([c1, *args])} refused a valid input {shape}: {e}"
        return
    assert C == c1, f"{name} built for {c1} channels ran on {C}"
    assert y.shape == (B, getattr(layer, "c2", None) or C, H, W)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in layer.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname


# ---------------------------------------------------------------- numerics

TOL = {torch.float32: 3e-4, torch.float16: 4e-3, torch.bfloat16: 2e-2}  # relative, well-conditioned inputs (as xformers)
LOW = [torch.float16, torch.bfloat16]
# fp16 matmuls are slow on CPUs without native fp16: a narrower feed-forward than the 2048 default, two layers deep.
BUILD_ARGS = {"TransformerEncoderLayer": [8, 128], "TransformerEncoder": [8, 2, 128]}


def build(name: str, seed: int = 0, fused: bool = True) -> nn.Module:
    """Layer at 64 channels; zero-initialised tensors (the block's output projection) get small weights, so the
    attention path shows in the output instead of an exact identity."""
    torch.manual_seed(seed)
    layer = layers()[name](64, *BUILD_ARGS.get(name, []))
    with torch.no_grad():
        for p in layer.parameters():
            if not p.any():
                nn.init.normal_(p, std=0.05)
    for m in layer.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = fused
    return layer


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("dtype", [torch.float32, *LOW], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_matches_float64_within_dtype_tolerance(name, dtype):
    layer = build(name).eval()
    x = torch.randn(2, 64, 6, 7)
    with torch.no_grad():
        ref = copy.deepcopy(layer).double()(x.double())
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            out = layer(x)
    assert rel_err(out, ref) < TOL[dtype]


INPUTS = {
    "randn_x1e3": lambda shape: torch.randn(shape) * 1e3,
    "all_equal": lambda shape: torch.ones(shape),
    "all_equal_1e3": lambda shape: torch.full(shape, 1e3),
}


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "manual"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("inputs", sorted(INPUTS))
@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_autocast_stays_finite(name, dtype, inputs, train, fused):
    """fp16/bf16 autocast, forward and backward, on large and on constant activations (BatchNorm variance 0).

    The loss has bounded gradients, as real losses do: large upstream gradients on top of large activations
    overflow fp16 by arithmetic, which is what a GradScaler is for.
    """
    layer = build(name, fused=fused).train(train)
    x = INPUTS[inputs]((2, 64, 6, 7)).requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        y = layer(x)
    assert torch.isfinite(y).all()
    (y.float() * torch.randn(y.shape)).mean().backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_layer_outputs_and_gradients(name):
    def once():
        layer = build(name, seed=7).train()  # training: dropout draws from the seeded generator too
        torch.manual_seed(8)
        x = torch.randn(2, 64, 5, 9, requires_grad=True)
        y = layer(x)
        y.square().mean().backward()
        return y.detach(), x.grad, [p.grad for p in layer.parameters()]

    (y1, gx1, gp1), (y2, gx2, gp2) = once(), once()
    assert torch.equal(y1, y2) and torch.equal(gx1, gx2)
    assert all(torch.equal(a, b) for a, b in zip(gp1, gp2))
