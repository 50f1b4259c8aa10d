"""Each shipped task config through the whole Ultralytics cycle: train 1 epoch on CPU, validate, predict, export to
ONNX with parity to PyTorch, reload in a fresh process under ULTRALYTICS_SAFE_LOAD=1.

Detection trains on a tiny shapes dataset built here. The other tasks need the embedded per-task datasets
(`attn-shapes-seg.yaml`, ...); until those are shipped with the package their cases are skipped, saying so.
Training is tiny (64 px, a few images): it checks the plumbing, not accuracy.
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
from yolo_attn.integration import packaged_config

from ultralytics import YOLO  # noqa: E402

TRAIN_ARGS = dict(epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, amp=False, seed=0)
TASK_DATA = {"-seg": "attn-shapes-seg.yaml", "-pose": "attn-shapes-pose.yaml", "-obb": "attn-shapes-obb.yaml",
             "-cls": "attn-shapes-cls"}  # the embedded per-task datasets, by the names users give


@pytest.fixture(scope="module")
def detect_data(tmp_path_factory) -> str:
    root = build_shapes(tmp_path_factory.mktemp("shapes"), n_train=8, n_val=4, imgsz=64)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {list(SHAPES_NAMES)}\n")
    return str(root / "data.yaml")


def task_data(task: str, detect_data: str) -> str:
    if task == "":
        return detect_data
    name = TASK_DATA[task]
    if not (packaged_config(name) or packaged_config(f"{name}.yaml")):
        pytest.skip(f"the embedded dataset {name} is not shipped in yolo_attn/configs yet (per-task datasets)")
    return name


def first_output(y) -> torch.Tensor:
    return y if isinstance(y, torch.Tensor) else first_output(y[0])


@pytest.mark.parametrize("task", ["", "-seg", "-pose", "-obb", "-cls"], ids=["detect", "seg", "pose", "obb", "cls"])
def test_train_val_predict_export_reload(task, detect_data, tmp_path):
    import onnxruntime as ort

    data = task_data(task, detect_data)
    model = YOLO(f"yolo11n{task}-attn.yaml")
    assert sum(isinstance(m, SelfAttentionBlock) for m in model.model.modules()) == (1 if task == "-cls" else 3)
    model.train(data=data, project=str(tmp_path), name="run", val=True, **TRAIN_ARGS)
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
