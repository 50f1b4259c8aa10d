"""Every registered YAML layer: shapes, backward, determinism, and torch.compile (eager and inductor)."""

from __future__ import annotations

import pytest
import torch

from yolo_attn import Attention2d, SelfAttentionBlock
from yolo_attn.integration.registry import layers


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
