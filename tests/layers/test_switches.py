"""The one forward decision of Attention2d (`switches.route`), and each route against the naive maths."""

from __future__ import annotations

import pytest
import torch

import yolo_attn.layers.switches as switches
from yolo_attn import Attention2d
from yolo_attn.layers.switches import Mode, Route, route

CASES = [dict(), dict(kv_stride=2), dict(kv_tokens=20), dict(pos=False, qkv_bias=True, proj_bias=True)]
IDS = ["qkv", "pooled", "capped", "no-pos-biases"]


def layer_and_input(kwargs: dict, dtype=torch.float64) -> tuple[Attention2d, torch.Tensor]:
    torch.manual_seed(0)
    layer = Attention2d(32, head_dim=16, **kwargs).to(dtype)
    return layer, torch.randn(2, 32, 7, 9, dtype=dtype)


def test_route_rule(monkeypatch):
    x = torch.randn(1, 8, 4, 4)
    assert route(x) == Route(Mode.EAGER, False)  # grad mode: tokens
    with torch.no_grad():
        assert route(x) == Route(Mode.EAGER, False)  # small map: tokens
        monkeypatch.setattr(switches, "CHANNELS_FIRST_MIN", 0)
        assert route(x) == Route(Mode.EAGER, True)  # large contiguous map in inference: channels-first
        assert route(x.to(memory_format=torch.channels_last)) == Route(Mode.EAGER, False)
    assert route(x) == Route(Mode.EAGER, False)  # grad mode: tokens, whatever the size
    assert not Route(Mode.EAGER, True).graph and Route(Mode.TRACING, False).graph


def test_route_is_decided_once_per_forward(monkeypatch):
    calls = []
    real = switches.route

    def counting(x):
        calls.append(1)
        return real(x)

    import yolo_attn.layers.attention2d as attention2d

    monkeypatch.setattr(attention2d, "route", counting)
    layer, x = layer_and_input(dict(kv_tokens=20))
    layer(x)
    with torch.no_grad():
        layer(x)
    assert len(calls) == 2


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_token_route_forward_and_gradients_match_the_maths(kwargs, reference):
    layer, x = layer_and_input(kwargs)
    x.requires_grad_()
    y = layer(x)
    ref = reference(layer, x)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *layer.parameters()], g)
    want = torch.autograd.grad(ref, [x, *layer.parameters()], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_channels_first_route_matches_the_maths(kwargs, reference, monkeypatch):
    monkeypatch.setattr(switches, "CHANNELS_FIRST_MIN", 0)
    layer, x = layer_and_input(kwargs)
    with torch.no_grad():
        assert route(x).channels_first
        y = layer(x)
        torch.testing.assert_close(y, reference(layer, x))
    assert y.is_contiguous()  # the rule: channels-first route -> channels-first output


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_traced_route_matches_the_maths(kwargs, reference):
    layer, x = layer_and_input(kwargs)
    with torch.no_grad():
        traced = torch.jit.trace(layer, x)
        other = torch.randn(1, 32, 11, 6, dtype=torch.float64)  # another size: nothing frozen at the trace size
        torch.testing.assert_close(traced(other), reference(layer, other))


@pytest.mark.parametrize("kwargs", CASES, ids=IDS)
def test_compiled_training_matches_the_maths(kwargs, reference):
    layer, x = layer_and_input(kwargs, torch.float32)
    compiled = torch.compile(layer, fullgraph=True)  # inductor on CPU
    x.requires_grad_()
    y = compiled(x)
    ref = reference(layer, x)
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, *layer.parameters()], g)
    want = torch.autograd.grad(ref, [x, *layer.parameters()], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_output_memory_format_follows_the_route_not_the_input(monkeypatch):
    layer, x = layer_and_input(dict())
    assert layer(x).is_contiguous(memory_format=torch.channels_last)  # token route: channels-last
    with torch.no_grad():
        assert layer(x).is_contiguous(memory_format=torch.channels_last)  # small map: still the token route
        monkeypatch.setattr(switches, "CHANNELS_FIRST_MIN", 0)
        assert layer(x).is_contiguous()  # channels-first route


def test_scripting_is_not_a_mode():
    # Export traces (what Ultralytics does); TorchScript scripting of the layers is not supported, and says so.
    with pytest.raises(Exception):
        torch.jit.script(Attention2d(32, head_dim=16))
