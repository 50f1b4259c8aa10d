"""Position encodings: the cached table, its shift, and that position tells pixels apart."""

from __future__ import annotations

import torch

from yolo_attn import PositionalEncoding2d, build_sincos2d_pos_embed


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


def test_position_cache_follows_an_edited_shift():
    pe = PositionalEncoding2d(8)
    pe.shift = torch.zeros(8)
    t0 = pe.table(4, 5, torch.device("cpu"), torch.float32).clone()
    pe.shift += 1.0  # in place: the cached table must not go stale
    torch.testing.assert_close(pe.table(4, 5, torch.device("cpu"), torch.float32), t0 + 1)
