"""Model YAML rows through the real Ultralytics parse_model: every scale and shipped config builds, channels come
from the layer a row reads, and the same seed builds the same model."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn as nn

from integration_helpers import CONFIGS
from yolo_attn import SelfAttentionBlock

from ultralytics.nn.tasks import DetectionModel  # noqa: E402  after yolo_attn


@pytest.mark.parametrize("scale, heads", [("n", 1), ("s", 2), ("m", 3), ("l", 4), ("x", 5)])
def test_every_scale_builds_and_heads_follow_width(scale, heads):
    model = DetectionModel(str(CONFIGS / f"yolov8{scale}-attn.yaml"), verbose=False)
    blocks = [m for m in model.modules() if isinstance(m, SelfAttentionBlock)]
    assert len(blocks) == 3
    assert blocks[0].attn.num_heads == heads  # P3 width / head_dim 64
    assert [b.c1 for b in blocks] == [model.model[i].c1 for i in (16, 20, 24)]
    x = torch.zeros(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert model(x)[0].shape[:2] == (1, 84)


@pytest.mark.parametrize("cfg", sorted(p.name for p in CONFIGS.glob("yolov8-attn*.yaml")))
def test_every_shipped_config_builds_at_scale_n(cfg):
    model = DetectionModel(str(CONFIGS / cfg.replace("yolov8-", "yolov8n-")), verbose=False)
    assert any(isinstance(m, SelfAttentionBlock) for m in model.modules())
    assert model.yaml["scale"] == "n"


def test_channels_come_from_the_layer_read():
    model = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
    for i, c in ((16, 64), (20, 128), (24, 256)):
        assert model.model[i].c1 == c
        assert model.model[i].type == "yolo_attn.SelfAttentionBlock"  # the layer table names our class


def test_same_seed_same_detection_model_forward():
    def once():
        torch.manual_seed(3)
        model = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, SelfAttentionBlock):
                    nn.init.normal_(m.attn.proj.weight, std=0.05)  # let the attention change the outputs
            torch.manual_seed(4)
            return model.state_dict(), model.eval()(torch.rand(1, 3, 64, 64))[0]

    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # as users run it, not single-threaded as the rest of this module
    try:
        (sd1, y1), (sd2, y2) = once(), once()
    finally:
        torch.set_num_threads(threads)
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert torch.equal(y1, y2)
