"""Each shipped (family x task) config, YOLO11 and YOLOv8 at scale n, through the whole Ultralytics cycle: train 1 epoch
on CPU, validate, predict, export to ONNX with parity to PyTorch, reload in a fresh process under ULTRALYTICS_SAFE_LOAD=1.

Detection trains on a tiny shapes dataset built here; the other tasks on their embedded per-task datasets, named as
users name them (`attn-shapes-seg.yaml`, ..., `attn-shapes-cls`), so the first run also builds them, at their default
size, under Ultralytics' datasets_dir. Training is tiny (64 px, a few images: `fraction` of an embedded set): it
checks the plumbing, not accuracy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolo_attn import SelfAttentionBlock
from yolo_attn.datasets import SHAPES_NAMES, build_shapes

from ultralytics import YOLO  # noqa: E402

TRAIN_ARGS = dict(epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, amp=False, seed=0)
TASK_DATA = {"-seg": "attn-shapes-seg.yaml", "-pose": "attn-shapes-pose.yaml", "-obb": "attn-shapes-obb.yaml",
             "-cls": "attn-shapes-cls"}  # the embedded per-task datasets, by the names users give
EMBEDDED_FRACTION = 0.05  # of an embedded set's 600 training images: 30, enough for the plumbing


@pytest.fixture(scope="module")
def detect_data(tmp_path_factory) -> str:
    root = build_shapes(tmp_path_factory.mktemp("shapes"), n_train=8, n_val=4, imgsz=64)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {list(SHAPES_NAMES)}\n")
    return str(root / "data.yaml")


def task_data(task: str, detect_data: str) -> tuple[str, float]:
    """The data a task trains on, and the fraction of its training images used."""
    if task == "":
        return detect_data, 1.0
    return TASK_DATA[task], EMBEDDED_FRACTION


def first_output(y) -> torch.Tensor:
    return y if isinstance(y, torch.Tensor) else first_output(y[0])


@pytest.mark.parametrize("family", ["yolo11n", "yolov8n"])
@pytest.mark.parametrize("task", ["", "-seg", "-pose", "-obb", "-cls"], ids=["detect", "seg", "pose", "obb", "cls"])
def test_train_val_predict_export_reload(family, task, detect_data, tmp_path):
    import onnxruntime as ort

    data, fraction = task_data(task, detect_data)
    model = YOLO(f"{family}{task}-attn.yaml")
    assert sum(isinstance(m, SelfAttentionBlock) for m in model.model.modules()) == (1 if task == "-cls" else 3)
    model.train(data=data, project=str(tmp_path), name="run", val=True, fraction=fraction, **TRAIN_ARGS)
    best = tmp_path / "run" / "weights" / "best.pt"
    assert best.is_file()

    trained = YOLO(str(best))
    metrics = trained.val(data=data, imgsz=64, batch=4, workers=0, device="cpu", plots=False)
    assert metrics is not None
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert len(trained.predict(x, imgsz=64, verbose=False)) == 1

    onnx_file = trained.export(format="onnx", imgsz=64, verbose=False)
    reference = YOLO(str(best)).model.float().fuse().eval()
    with torch.no_grad():
        expected = first_output(reference(x)).numpy()
    got = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    assert got.shape == expected.shape
    assert abs(got - expected).max() < 2e-3  # fp32 export: same numbers up to float rounding

    code = (f"from ultralytics import YOLO\nm = YOLO({str(best)!r})\n"
            "assert any(type(x).__name__ == 'SelfAttentionBlock' for x in m.model.modules())\nprint('loaded')\n")
    env = {**os.environ, "ULTRALYTICS_SAFE_LOAD": "1", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "loaded" in p.stdout, p.stderr[-3000:]
