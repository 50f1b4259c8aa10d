"""Model YAML rows: the names bound in `ultralytics.nn.tasks`, and the factory that builds a row's layer.

`parse_model` looks a row's layer name up in `ultralytics.nn.tasks`' globals and, for a class it does not know,
passes the YAML args unchanged. What is bound is a small factory class that reads the row's input channels from
`parse_model`'s own frame and builds the plain layer `Layer(c1, *args)`, so models (and checkpoints) hold only the
plain yolo_attn classes. Errors name the row. The errors parse_model raises itself on a row (a misspelled name, a
row reading several layers) are explained by `yolo_attn_autoload.wrap_parse_model`.
"""

from __future__ import annotations

import inspect
import sys

import torch.nn as nn

from . import registry

_parse_model_code = None  # code object of the real parse_model, to recognise its frame


def _row_context() -> tuple[int, object, list] | None:
    """Return (row index, from, channels) of the `parse_model` frame building a layer now, or None outside it."""
    frame = sys._getframe(2)  # caller of the factory's __new__ (parse_model, or its generator for repeats)
    for _ in range(4):
        if frame is None:
            return None
        if frame.f_code is _parse_model_code:
            loc = frame.f_locals
            return loc["i"], loc["f"], loc["ch"]
        frame = frame.f_back
    return None


class _YamlFactory(nn.Module):
    """Base of the names bound in `ultralytics.nn.tasks`: `Name(*yaml_args)` inside parse_model -> `Layer(c1, ...)`."""

    layer: type[nn.Module]
    _yolo_attn_factory = True  # how `yolo_attn_autoload.wrap_parse_model` recognises our rows without importing us

    def __new__(cls, *args):
        ctx = _row_context()
        if ctx is None:  # built by hand, outside a YAML: arguments are the layer's own
            return cls.layer(*args)
        i, f, ch = ctx
        name = cls.layer.__name__
        where = f"model YAML row {i} [{f}, ..., {name}, {list(args)}]"
        c1 = ch[f]
        try:
            bound = inspect.signature(cls.layer).bind(c1, *args)
        except TypeError:
            names = ", ".join(f"{n}={d!r}" for n, d in registry.yaml_args(cls.layer))
            raise TypeError(
                f"yolo-attn: {where}: {name} takes at most {len(registry.yaml_args(cls.layer))} YAML args "
                f"after its input channels ({names}), got {len(args)}."
            ) from None
        if bound.arguments.get("c2") not in (None, c1):  # checked first: a huge c2 would be allocated before failing
            raise ValueError(f"yolo-attn: {where}: a YAML row's output channels equal its input ({c1}); drop c2.")
        try:
            return cls.layer(c1, *args)
        except (TypeError, ValueError) as e:
            raise type(e)(f"yolo-attn: {where} with {c1} input channels: {e}") from None


def _factory(layer: type[nn.Module]) -> type[_YamlFactory]:
    # Module "yolo_attn" so the layer table reads "yolo_attn.SelfAttentionBlock"; the factory itself is never
    # pickled, since __new__ returns the plain layer.
    return type(layer.__name__, (_YamlFactory,), {"layer": layer, "__module__": "yolo_attn", "__doc__": layer.__doc__})


def _bind_names(tasks) -> None:
    global _parse_model_code
    _parse_model_code = inspect.unwrap(tasks.parse_model).__code__  # through any wrapper (ours, the off-hint)
    for name, layer in registry.layers().items():
        current = vars(tasks).get(name)
        if current is not None and getattr(current, "layer", None) is not layer:
            raise RuntimeError(
                f"yolo-attn: ultralytics.nn.tasks already defines {name} ({current!r}); not shadowing it. "
                "Rename the conflicting layer or set YOLO_ATTN_AUTOLOAD=0."
            )
        if current is None:
            setattr(tasks, name, _factory(layer))
