"""Integration with the real Ultralytics: YAML rows, every scale, summaries, training, checkpoints, CLI, DDP start-up.

Training here is tiny (64 px, a few images, 1 epoch on CPU): it checks the plumbing, not accuracy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import yolo_attn
from yolo_attn import SelfAttentionBlock
from yolo_attn.datasets import build_shapes

from ultralytics import YOLO  # noqa: E402  after yolo_attn on purpose: the plugin must also work in this order
from ultralytics.nn.tasks import DetectionModel

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TRAIN_ARGS = dict(epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, amp=False, seed=0)


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command in a fresh process; fail with its output on a non-zero exit."""
    full_env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", **(env or {})}
    p = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def yolo_cli() -> str:
    return str(Path(sys.executable).with_name("yolo"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A 16+8 image shapes dataset and its data YAML, with an absolute path (no download, no datasets_dir)."""
    root = build_shapes(tmp_path_factory.mktemp("shapes"), n_train=16, n_val=8, imgsz=64)
    yaml = root / "data.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(["circle", "square", "triangle", "star", "cross", "ring"]))
    yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return yaml


@pytest.fixture(scope="session")
def cli_run(tiny_data, tmp_path_factory) -> Path:
    """Train with the stock `yolo` CLI, no import by the user: returns the run directory."""
    work = tmp_path_factory.mktemp("cli")
    args = " ".join(f"{k}={v}" for k, v in TRAIN_ARGS.items())
    run([yolo_cli(), "train", f"model={CONFIGS / 'yolov8n-attn.yaml'}", f"data={tiny_data}", *args.split(),
         f"project={work}", "name=run", "exist_ok=True"], cwd=work)
    return work / "run"


# ---------------------------------------------------------------- building from YAML


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


def test_summary_counts_attention_params_and_flops():
    base = DetectionModel("yolov8n.yaml", verbose=False)
    attn = DetectionModel(str(CONFIGS / "yolov8n-attn-standard.yaml"), verbose=False)
    blocks = [m for m in attn.modules() if isinstance(m, SelfAttentionBlock)]
    added = sum(p.numel() for b in blocks for p in b.parameters())
    _, base_params, _, base_flops = base.info()
    _, params, _, flops = attn.info()
    assert params - base_params == added
    # Global attention at 640 px: q/k/v and output projections (8 C^2 N) plus QK^T and AV (4 N^2 C), per level.
    expected = sum(8 * c * c * n + 4 * n * n * c for c, n in ((64, 80 * 80), (128, 40 * 40), (256, 20 * 20))) / 1e9
    assert abs((flops - base_flops) - expected) / expected < 0.05


def test_capped_config_flops_are_measured_at_full_size():
    capped = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
    full = DetectionModel(str(CONFIGS / "yolov8n-attn-standard.yaml"), verbose=False)
    base = DetectionModel("yolov8n.yaml", verbose=False)
    f_capped, f_full, f_base = (m.info()[3] for m in (capped, full, base))
    # At 640 px the cap of 400 keys binds at P3 (6400 pixels, keys pooled 4x4) and P4 (1600, pooled 2x2): per level,
    # QK^T and AV lose 4 N (N - Nk) C FLOPs and the key/value projection 4 (N - Nk) C^2.
    saved = sum(4 * n * (n - 400) * c + 4 * (n - 400) * c * c for n, c in ((6400, 64), (1600, 128))) / 1e9
    expected = (f_full - f_base) - saved
    assert abs((f_capped - f_base) - expected) / expected < 0.01


# ---------------------------------------------------------------- bad YAML rows


def write_cfg(tmp_path: Path, row: str, name: str = "yolov8n-bad.yaml") -> Path:
    text = (CONFIGS / "yolov8-attn.yaml").read_text()
    text = text.replace("[-1, 1, SelfAttentionBlock, [standard, 64, null, null, True, 400]] # 16", row + " # 16", 1)
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "row, error, match",
    [
        ("[-1, 1, SelfAttentionBlock, [standard, 48]]", ValueError,
         r"model YAML row 16 .*SelfAttentionBlock.* 64 input channels: .*not divisible by head_dim 48"),
        ("[-1, 1, SelfAttentionBlock, [gobal]]", ValueError, r"row 16 .*unknown type 'gobal'; choose one of"),
        ("[-1, 1, SelfAttentionBlock, [standard, 32, 1, 1, True, 0, 0.0, 7, 8]]", TypeError,
         r"row 16 .*takes at most 7 YAML args after its input channels \(type='standard', head_dim=32"),
        ("[-1, 1, SpatialSelfAttention, [32, 2, True, 128]]", ValueError, r"row 16 .*output channels equal its input"),
    ],
)
def test_bad_yaml_rows_raise_clear_errors(tmp_path, row, error, match):
    with pytest.raises(error, match=match):
        DetectionModel(str(write_cfg(tmp_path, row)), verbose=False)


def test_ultralytics_fuse_folds_attention_norms():
    # Ultralytics fuses before predict, val of a checkpoint and export; its fuse() must fold our blocks' norms too.
    torch.manual_seed(0)
    model = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
    for b in model.modules():
        if isinstance(b, SelfAttentionBlock):
            torch.nn.init.normal_(b.attn.proj.weight, std=0.1)
            with torch.no_grad():
                b.norm.running_mean.uniform_(-1, 1)
                b.norm.running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        before = model(x)[0]
        model.fuse(verbose=False)
        after = model(x)[0]
    blocks = [b for b in model.modules() if isinstance(b, SelfAttentionBlock)]
    assert len(blocks) == 3 and all(b.norm is None for b in blocks) and model.is_fused()
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-3)


def test_layers_built_by_hand_through_ultralytics_names():
    import ultralytics.nn.tasks as tasks

    layer = tasks.SelfAttentionBlock(32, "efficient")  # outside parse_model: the layer's own arguments
    assert type(layer) is SelfAttentionBlock and layer.c1 == 32


# ---------------------------------------------------------------- training, checkpoints, CLI


def test_python_api_trains_predicts_and_resumes(tiny_data, tmp_path):
    model = YOLO(str(CONFIGS / "yolov8n-attn.yaml"))

    def stop_after_first_save(trainer):
        raise KeyboardInterrupt("simulated kill during training")

    model.add_callback("on_model_save", stop_after_first_save)
    with pytest.raises(KeyboardInterrupt):
        model.train(data=str(tiny_data), **{**TRAIN_ARGS, "epochs": 2}, project=str(tmp_path), name="run")
    last = tmp_path / "run" / "weights" / "last.pt"
    assert last.exists()
    resumed = YOLO(str(last))
    resumed.train(resume=True)
    ckpt = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=False)
    assert ckpt["epoch"] == -1 or ckpt.get("train_results")  # finished run
    results = YOLO(str(tmp_path / "run" / "weights" / "best.pt")).predict(torch.rand(1, 3, 64, 64), verbose=False)
    assert len(results) == 1


def test_cli_train_val_predict_export_without_import(cli_run, tiny_data, tmp_path):
    best = cli_run / "weights" / "best.pt"
    assert best.exists() and (cli_run / "weights" / "last.pt").exists()
    img = next((tiny_data.parent / "images" / "val").iterdir())
    run([yolo_cli(), "val", f"model={best}", f"data={tiny_data}", "imgsz=64", "batch=4", "device=cpu",
         "plots=False"], cwd=tmp_path)
    out = run([yolo_cli(), "predict", f"model={best}", f"source={img}", "imgsz=64", "device=cpu",
               f"project={tmp_path}", "name=pred"], cwd=tmp_path)
    assert "1/1" in out.stdout + out.stderr
    run([yolo_cli(), "export", f"model={best}", "format=torchscript", "imgsz=64"], cwd=tmp_path)
    assert best.with_suffix(".torchscript").exists()


def test_checkpoint_loads_in_fresh_process_and_under_safe_load(cli_run, tmp_path):
    best = cli_run / "weights" / "best.pt"
    code = (
        "import sys, torch\n"
        "from ultralytics import YOLO\n"
        f"m = YOLO({str(best)!r})\n"
        "assert 'yolo_attn' in sys.modules\n"
        "assert any(type(x).__name__ == 'SelfAttentionBlock' for x in m.model.modules())\n"
        "m.predict(torch.rand(1, 3, 64, 64), verbose=False)\n"
        "print('loaded')\n"
    )
    for env in ({}, {"ULTRALYTICS_SAFE_LOAD": "1"}):
        assert "loaded" in run([sys.executable, "-c", code], cwd=tmp_path, env=env).stdout


def test_safe_load_allows_only_plugin_classes():
    import ultralytics.nn.tasks as tasks

    from yolo_attn.integration import plugin_classes, safe_load_names

    registry = tasks._SafeLoad._registry
    ours = {k for k, v in registry.items() if k.startswith("yolo_attn")}
    assert ours == set(safe_load_names())  # each class under its module now and its 0.1.0 module
    assert {f"{c.__module__}.{c.__qualname__}" for c in plugin_classes()} < ours
    assert {"yolo_attn.block.SelfAttentionBlock", "yolo_attn.attention2d.Attention2d"} < ours
    assert all(registry[k].__module__.startswith("yolo_attn.") for k in ours)


def test_ddp_worker_start_up_path(tiny_data, tmp_path):
    """Ultralytics' DDP workers run a generated file that unpickles the trainer: run that file on CPU."""
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.dist import generate_ddp_file

    overrides = dict(model=str(CONFIGS / "yolov8n-attn.yaml"), data=str(tiny_data), **TRAIN_ARGS,
                     project=str(tmp_path), name="ddp", exist_ok=True, val=False)
    trainer = DetectionTrainer(overrides=overrides)
    trainer.model = trainer.get_model(cfg=str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
    file = generate_ddp_file(trainer)
    try:
        text = Path(file).read_text()
        assert "import yolo_attn" not in text  # the worker file itself imports nothing of ours
        run([sys.executable, file], cwd=tmp_path)
    finally:
        Path(file).unlink(missing_ok=True)
        Path(file).with_suffix(".pt").unlink(missing_ok=True)
    assert (tmp_path / "ddp" / "weights" / "last.pt").exists()


def test_register_before_ultralytics_is_imported(tmp_path):
    # register() imports Ultralytics, whose import runs the auto-loader, which calls register() again: no deadlock.
    code = ("import yolo_attn.integration as i; i.register(); "
            "import ultralytics.nn.tasks as t; assert t.SelfAttentionBlock; print('ok')")
    assert run([sys.executable, "-c", code], cwd=tmp_path, timeout=120).stdout.strip().endswith("ok")


def test_plugin_version_is_exposed():
    assert yolo_attn.__version__
