"""The layers: plain PyTorch, nothing outside this folder (no Ultralytics).

A model YAML names the layers listed in `yolo_attn_autoload.LAYERS`; `yolo_attn.integration` teaches Ultralytics
those names. The names below load their module on first use, so a torch-free helper of this folder
(`yolo_attn.layers.checks`, which the dataset builders share) can be imported without importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {  # public name -> module of this folder defining it
    "Attention2d": "attention2d",
    "EfficientSelfAttention": "attention2d",
    "PositionalEncoding": "pos_embed",
    "PositionalEncoding2d": "pos_embed",
    "SelfAttention": "attention",
    "SelfAttentionBlock": "block",
    "SpatialSelfAttention": "attention2d",
    "TransformerEncoder": "transformer",
    "TransformerEncoderLayer": "transformer",
    "attend": "attention",
    "build_sincos1d_pos_embed": "pos_embed",
    "build_sincos2d_pos_embed": "pos_embed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
