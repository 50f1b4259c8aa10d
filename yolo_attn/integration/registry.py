"""The layers a model YAML may name, and their YAML signatures. Plain Python: no Ultralytics here.

The names come from the one list, `yolo_attn_autoload.LAYERS`. A YAML row `[from, repeats, Name, [args...]]`
builds `Name(c1, *args)`: the input channels c1 come from the layer the row reads, never from the YAML.
"""

from __future__ import annotations

import importlib
import inspect

import torch.nn as nn
from yolo_attn_autoload import LAYER_NAMES, LAYERS

_LAYERS: dict[str, type[nn.Module]] = {}


def layer_class(name: str) -> type[nn.Module]:
    """Import and return the plugin's layer class `name` (any name of `yolo_attn_autoload.LAYERS`)."""
    return getattr(importlib.import_module(LAYERS[name][0]), name)


def plugin_classes() -> list[type[nn.Module]]:
    """Every nn.Module class the plugin defines: what a checkpoint of an attention model can reference."""
    return [layer_class(name) for name in sorted(LAYERS)]


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


for _name in sorted(LAYER_NAMES):
    register_layer(layer_class(_name))
