"""The OBB set: valid 8-coordinate labels, byte-deterministic, trainable with the real `yolo` CLI (task=obb)."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from yolo_attn.datasets.obb import build_shapes_obb


def test_labels_valid_and_deterministic(tmp_path):
    a = build_shapes_obb(tmp_path / "a", n_train=6, n_val=2, imgsz=64, workers=1)
    b = build_shapes_obb(tmp_path / "b", n_train=6, n_val=2, imgsz=64, workers=2)
    for p in sorted((a / "labels" / "train").glob("*.txt")):
        rows = np.loadtxt(p, ndmin=2)
        assert rows.shape[1] == 9 and set(rows[:, 0]) <= {0, 1}
        assert (rows[:, 1:] >= 0).all() and (rows[:, 1:] <= 1).all()
        assert p.read_bytes() == (b / "labels" / "train" / p.name).read_bytes()
        assert (a / "images" / "train" / f"{p.stem}.jpg").read_bytes() == (b / "images" / "train" / f"{p.stem}.jpg").read_bytes()


def test_yolo_train_obb(tmp_path):
    root = build_shapes_obb(tmp_path / "obb", n_train=8, n_val=4, imgsz=64)
    yolo = str(Path(sys.executable).parent / "yolo")
    cmd = [yolo, "train", "task=obb", "model=yolov8n-obb.yaml", f"data={root / 'data.yaml'}", "imgsz=64",
           "epochs=1", "batch=4", "workers=0", "device=cpu", "pretrained=False", "amp=False", "plots=False",
           f"project={tmp_path}", "name=run", "exist_ok=True"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    last = tmp_path / "run" / "weights" / "last.pt"
    r = subprocess.run([yolo, "predict", "task=obb", f"model={last}", f"source={root / 'images' / 'val'}", "imgsz=64",
                        "device=cpu", f"project={tmp_path}", "name=pred", "exist_ok=True"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_packaged_yaml_matches_builder():
    import yaml

    from yolo_attn.datasets.obb import OBB_NAMES

    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "yolo_attn/configs/attn-shapes-obb.yaml").read_text())
    assert tuple(cfg["names"].values()) == OBB_NAMES and "build_shapes_obb" in cfg["download"]
