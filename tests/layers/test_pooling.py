"""Key/value pooling: the factor, and pooling at odd sizes against explicit windows and avg_pool2d."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from yolo_attn import Attention2d
from yolo_attn.layers.pooling import kv_pool_factor
from layer_helpers import reference_pool, backward_nodes


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


@pytest.mark.parametrize("size, pooled_by", [((12, 16), "MeanBackward1"), ((13, 17), "AvgPool2DBackward0")])
def test_pooling_averages_windows_as_avg_pool2d(size, pooled_by):
    # Maps that the factor divides pool by a mean over a view (cheap backward); others through avg_pool2d with
    # partial border windows. Both equal avg_pool2d(ceil_mode=True, count_include_pad=False).
    tokens = torch.randn(2, *size, 8, dtype=torch.float64, requires_grad=True)
    pooled = Attention2d.pool_tokens(tokens, 4)
    ref = F.avg_pool2d(tokens.permute(0, 3, 1, 2), 4, 4, ceil_mode=True, count_include_pad=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(pooled, ref)
    assert pooled_by in backward_nodes(pooled)
