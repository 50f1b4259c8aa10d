"""Registration with Ultralytics: the one layer list and what derives from it, names in Ultralytics' namespace,
registering before Ultralytics is imported."""

from __future__ import annotations

import importlib
import sys

import yolo_attn
import yolo_attn_autoload
from integration_helpers import run
from yolo_attn import SelfAttentionBlock
from yolo_attn.integration.registry import layers


def test_the_one_layer_list_resolves_and_everything_derives_from_it():
    # yolo_attn_autoload.LAYERS is the only list: each entry names a real layer class where it says, the registry
    # holds exactly its YAML names, and the public API exports every class.
    import torch.nn as nn

    for name, (module, _) in yolo_attn_autoload.LAYERS.items():
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == module, name
        assert getattr(yolo_attn, name) is cls and name in yolo_attn.__all__
    assert set(layers()) == yolo_attn_autoload.LAYER_NAMES


def test_layers_built_by_hand_through_ultralytics_names():
    import ultralytics.nn.tasks as tasks

    layer = tasks.SelfAttentionBlock(32, "efficient")  # outside parse_model: the layer's own arguments
    assert type(layer) is SelfAttentionBlock and layer.c1 == 32


def test_register_before_ultralytics_is_imported(tmp_path):
    # register() imports Ultralytics, whose import runs the auto-loader, which calls register() again: no deadlock.
    code = ("import yolo_attn.integration as i; i.register(); "
            "import ultralytics.nn.tasks as t; assert t.SelfAttentionBlock; print('ok')")
    assert run([sys.executable, "-c", code], cwd=tmp_path, timeout=120).stdout.strip().endswith("ok")


def test_plugin_version_is_exposed():
    assert yolo_attn.__version__
