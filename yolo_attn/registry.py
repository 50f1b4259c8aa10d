"""The layers a model YAML may name, and their YAML signatures. Plain Python: no Ultralytics here.

A YAML row `[from, repeats, Name, [args...]]` builds `Name(c1, *args)`: the input channels c1 come from the
layer the row reads, never from the YAML.
"""

from __future__ import annotations

import inspect

import torch.nn as nn

from .attention2d import EfficientSelfAttention, SpatialSelfAttention
from .block import SelfAttentionBlock
from .pos_embed import PositionalEncoding2d
from .transformer import TransformerEncoder, TransformerEncoderLayer

_LAYERS: dict[str, type[nn.Module]] = {}


def register_layer(cls: type[nn.Module], name: str | None = None) -> type[nn.Module]:
    """Add `cls` under `name` (default: its class name); a second layer under one name is an error."""
    name = name or cls.__name__
    if name in _LAYERS and _LAYERS[name] is not cls:
        first = _LAYERS[name]
        raise KeyError(f"yolo-attn: layer name {name!r} is taken by {first.__module__}.{first.__qualname__}.")
    _LAYERS[name] = cls
    return cls


def get_layer(name: str) -> type[nn.Module]:
    """Return the layer registered as `name`, or raise a KeyError listing the known names."""
    try:
        return _LAYERS[name]
    except KeyError:
        raise KeyError(f"yolo-attn: no layer {name!r}; known layers: {', '.join(sorted(_LAYERS))}.") from None


def layers() -> dict[str, type[nn.Module]]:
    """Return a copy of the name -> class table."""
    return dict(_LAYERS)


def yaml_args(cls: type[nn.Module]) -> list[tuple[str, object]]:
    """Return `(name, default)` of the arguments a YAML row gives, i.e. the constructor's after c1."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # drop self, c1
    return [(p.name, None if p.default is inspect.Parameter.empty else p.default) for p in params]


for _cls in (
    SelfAttentionBlock,
    SpatialSelfAttention,
    EfficientSelfAttention,
    PositionalEncoding2d,
    TransformerEncoderLayer,
    TransformerEncoder,
):
    register_layer(_cls)
