"""Training, checkpoints and the stock `yolo` CLI with the real Ultralytics: the Python API trains, resumes and
predicts; the CLI trains, validates, predicts and exports with no import by the user; checkpoints load in a fresh
process, also under safe loading; the DDP worker start-up path. Training is tiny (64 px, a few images, 1 epoch on
CPU): it checks the plumbing, not accuracy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import yolo_attn  # noqa: F401  registers the layers (the CLI tests rely on the auto-loader instead)
from integration_helpers import CONFIGS, TRAIN_ARGS, run, yolo_cli
from yolo_attn.datasets import build_shapes

from ultralytics import YOLO  # noqa: E402  after yolo_attn on purpose: the plugin must also work in this order


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
