"""A checkpoint saved by yolo-attn 0.1.0 through Ultralytics still loads, plainly and under safe loading, and
computes what 0.1.0 computed (tests/fixtures/make_legacy_checkpoint.py made both files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import yolo_attn  # noqa: F401  registers the layers
from ultralytics.nn import tasks

# Ultralytics' checkpoint loader, named attempt_load_one_weight before 8.4 (same arguments and result).
LOADER = "load_checkpoint" if hasattr(tasks, "load_checkpoint") else "attempt_load_one_weight"
load_checkpoint = getattr(tasks, LOADER)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CKPT, OUTPUTS = FIXTURES / "legacy-0.1.0.pt", FIXTURES / "legacy-0.1.0-outputs.pt"
OLD_PATHS = {  # module paths 0.1.0 pickled; they must keep resolving
    "yolo_attn.block.SelfAttentionBlock",
    "yolo_attn.attention2d.Attention2d",
    "yolo_attn.attention2d.SpatialSelfAttention",
    "yolo_attn.attention2d.EfficientSelfAttention",
    "yolo_attn.pos_embed.PositionalEncoding2d",
    "yolo_attn.transformer.TransformerEncoderLayer",
    "yolo_attn.transformer.TransformerEncoder",
    "yolo_attn.attention.SelfAttention",
}

CHECK = f"""
import sys, torch
import yolo_attn
from ultralytics.nn.tasks import {LOADER} as load_checkpoint
ref = torch.load({str(OUTPUTS)!r}, weights_only=True)
for fuse in (False, True):
    model, _ = load_checkpoint({str(CKPT)!r}, fuse=fuse)
    with torch.no_grad():
        y = model(ref["input"])[0]
    torch.testing.assert_close(y, ref["fused" if fuse else "eval"], rtol=1e-4, atol=1e-4)
print("same outputs")
"""


def test_fixture_pickles_the_old_paths():
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(CKPT)))
    assert OLD_PATHS <= needed, sorted(n for n in needed if n.startswith("yolo_attn"))


@pytest.mark.parametrize("fuse", [False, True], ids=["eval", "fused"])
def test_legacy_checkpoint_outputs_unchanged(fuse):
    ref = torch.load(OUTPUTS, weights_only=True)
    model, _ = load_checkpoint(str(CKPT), fuse=fuse)
    with torch.no_grad():
        y = model(ref["input"])[0]
    torch.testing.assert_close(y, ref["fused" if fuse else "eval"], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("safe", ["0", "1"], ids=["plain", "safe-load"])
def test_legacy_checkpoint_loads_in_fresh_process(safe):
    env = {**os.environ, "ULTRALYTICS_SAFE_LOAD": safe, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    p = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "same outputs" in p.stdout, p.stdout[-2000:] + p.stderr[-3000:]
