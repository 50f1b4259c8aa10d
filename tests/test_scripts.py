"""The benchmark tooling: variant specs and a CPU smoke run of scripts/benchmark.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ultralytics.nn.tasks import DetectionModel

from yolo_attn import SelfAttentionBlock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import variants  # noqa: E402


def test_spec_parsing_and_labels():
    assert variants.split_spec("yolov8n.yaml") == ("yolov8n.yaml", {})
    path, over = variants.split_spec("configs/yolov8n-attn.yaml:head_dim=16,kv_tokens=100,pos=False,type=efficient")
    assert path == "configs/yolov8n-attn.yaml"
    assert over == {"head_dim": 16, "kv_tokens": 100, "pos": False, "type": "efficient"}
    assert variants.label("configs/yolov8n-attn.yaml:head_dim=16") == "yolov8n-attn[head_dim=16]"
    with pytest.raises(SystemExit, match="unknown SelfAttentionBlock argument 'heads'"):
        variants.split_spec("configs/yolov8n-attn.yaml:heads=2")


def test_materialized_variant_builds_with_every_row_overridden(tmp_path):
    path = variants.materialize("configs/yolov8n-attn.yaml:head_dim=16,kv_tokens=100", tmp_path)
    assert Path(path).parent == tmp_path and "yolov8n" in Path(path).name  # scale still read from the name
    model = DetectionModel(path, verbose=False)
    blocks = [m for m in model.modules() if isinstance(m, SelfAttentionBlock)]
    assert len(blocks) == 3
    assert all(b.attn.head_dim == 16 and b.attn.kv_tokens == 100 for b in blocks)
    assert blocks[0].c1 == 64  # scale n widths: the override did not change the scale
    assert variants.materialize("yolov8n.yaml", tmp_path) == "yolov8n.yaml"  # no override: the config itself
    with pytest.raises(SystemExit, match="has no such row"):
        variants.materialize("yolov8n.yaml:head_dim=16", tmp_path)


def test_benchmark_cpu_smoke_run_interleaves_and_reports(tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--device", "cpu", "--quick",
           "--sections", "train,latency", "--rounds", "2", "--train-sizes", "64:2", "--latency-batches", "1",
           "yolov8n.yaml", "configs/yolov8n-attn.yaml:head_dim=16", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    models = json.loads((out / "benchmark.json").read_text())["models"]
    assert list(models) == ["yolov8n", "yolov8n-attn[head_dim=16]"]
    for m in models.values():
        train, lat = m["train@64b2"], m["lat@64b1"]
        assert train["rounds"] == 2 and train["steps"] == 2 and train["img_s"] > 0  # 1 step per round (--quick)
        assert lat["ms"] > 0 and lat["iters"] >= 2
    assert models["yolov8n"]["train@64b2"]["ratio_min"] == 1.0  # per-round ratios are against the first model
    assert "| yolov8n-attn[head_dim=16] |" in (out / "benchmark.md").read_text()


def test_benchmark_profiles_an_eval_forward(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--device", "cpu", "--profile",
           "configs/yolov8n-attn.yaml", "--profile-infer", "--train-sizes", "64:2", "--train-steps", "2",
           "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    md = (tmp_path / "profile_yolov8n-attn.md").read_text()
    assert md.startswith("## Profile of one fp32 eval forward: yolov8n-attn @64px b2")
    blocks = [line for line in md.splitlines() if line.startswith("| model.") and "SelfAttentionBlock" in line]
    assert len(blocks) == 3 and all(int(b.split("|")[2]) > 0 for b in blocks)  # each block's forward ops counted


def test_a_revisions_attention_runs_in_todays_model():
    # `config@REV` / `--ref REV`: the attention methods of a git revision, on today's modules and weights.
    import inspect
    import shutil

    import refimpl
    import torch

    from yolo_attn.layers.attention2d import Attention2d

    assert refimpl.split_rev("configs/yolov8n-attn.yaml@66f4337") == ("configs/yolov8n-attn.yaml", "66f4337")
    assert refimpl.split_rev("configs/yolov8n-attn.yaml:head_dim=16") == ("configs/yolov8n-attn.yaml:head_dim=16", None)
    if shutil.which("git") is None or subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                                                     capture_output=True).returncode:
        pytest.skip("needs the git history of this checkout")
    block = SelfAttentionBlock(64, "standard", 64, None, None, True, 20)
    torch.nn.init.normal_(block.attn.proj.weight, std=0.1)
    x = torch.randn(2, 64, 12, 16)
    want = block(x)
    refimpl.use_revision(block, "HEAD")
    assert type(block.attn).__name__ == "Attention2d@HEAD" and isinstance(block.attn, Attention2d)
    forward = inspect.unwrap(type(block.attn).forward)  # wrapped for revisions before forward's shortcut argument
    assert forward.__code__.co_filename == "HEAD:yolo_attn/layers/attention2d.py"
    assert "shortcut" in inspect.signature(type(block.attn).forward).parameters  # as the block (and THOP) call it
    got = block(x)
    unchanged = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "yolo_attn/layers/attention2d.py"])
    if unchanged.returncode == 0:  # HEAD's code is this checkout's: the same outputs
        torch.testing.assert_close(got, want)
    assert got.shape == want.shape
    with pytest.raises(SystemExit, match="no Attention2d"):
        refimpl.use_revision(torch.nn.Linear(2, 2), "HEAD")
    with pytest.raises(SystemExit, match="cannot read"):
        refimpl.attention2d_at("no-such-revision-xyz")


def test_block_costs_cpu_smoke_run(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "block_costs.py"), "--device", "cpu", "--quick",
           "--sections", "ops,blocks", "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((tmp_path / "block_costs.json").read_text())
    assert [row[1] for row in res["blocks"]] == ["64x80x80", "128x40x40", "256x20x20"]
    assert all(float(row[2]) > 0 for row in res["blocks"])  # host time measured
    assert len(res["ops"]) == 7 and all(float(a) > 0 and float(b) > 0 for _, a, b in res["ops"])
