"""Fixtures of the layer tests: the naive maths of Attention2d in the input's dtype, and a forced channels-first route."""

from __future__ import annotations

import functools

import pytest

from layer_helpers import reference_attention2d


@pytest.fixture
def reference():
    """The naive maths of Attention2d in the input's dtype."""
    return functools.partial(reference_attention2d, dtype=None)


@pytest.fixture
def channels_first_always(monkeypatch):
    """Inference reads every channels-first map transposed, however small (the real threshold is for GPU sizes)."""
    import yolo_attn.layers.switches as switches

    monkeypatch.setattr(switches, "CHANNELS_FIRST_MIN", 0)

