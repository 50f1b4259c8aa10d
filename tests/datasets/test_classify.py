"""The classification set: class folders, balanced, byte-deterministic, trainable with the real `yolo` CLI, by path
and by its bare name `attn-shapes-cls`."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yolo_attn.datasets import read_marker
from yolo_attn.datasets.classify import build_shapes_cls
from yolo_attn.datasets.draw import SHAPES_NAMES


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.jpg")):
        h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_class_folders_balanced(tmp_path):
    root = build_shapes_cls(tmp_path / "c", n_train=12, n_val=6, imgsz=64)
    for split, n in (("train", 2), ("val", 1)):
        assert sorted(d.name for d in (root / split).iterdir()) == sorted(SHAPES_NAMES)
        assert all(len(list((root / split / c).glob("*.jpg"))) == n for c in SHAPES_NAMES)


def test_deterministic_per_seed(tmp_path):
    a = build_shapes_cls(tmp_path / "a", n_train=6, n_val=6, imgsz=64, seed=3, workers=1)
    b = build_shapes_cls(tmp_path / "b", n_train=6, n_val=6, imgsz=64, seed=3, workers=2)
    c = build_shapes_cls(tmp_path / "c", n_train=6, n_val=6, imgsz=64, seed=4)
    assert _digest(a) == _digest(b) != _digest(c)


def test_yolo_train_classify(tmp_path):
    root = build_shapes_cls(tmp_path / "cls", n_train=12, n_val=6, imgsz=64)
    cmd = ["yolo", "train", "task=classify", "model=yolov8n-cls.yaml", f"data={root}", "imgsz=64", "epochs=1",
           "batch=4", "workers=0", "device=cpu", "pretrained=False", "amp=False", "plots=False",
           f"project={tmp_path}", "name=run", "exist_ok=True"]
    r = subprocess.run([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    last = tmp_path / "run" / "weights" / "last.pt"
    r = subprocess.run([str(Path(sys.executable).parent / "yolo"), "predict", "task=classify", f"model={last}",
                        f"source={root / 'val' / SHAPES_NAMES[0]}", "imgsz=64", "device=cpu", f"project={tmp_path}",
                        "name=pred", "exist_ok=True"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_yolo_train_by_bare_name_builds_offline(tmp_path):
    """`data=attn-shapes-cls` in the real `yolo` CLI (a fresh process, registered by the auto-loader alone) builds the
    class folders under Ultralytics' datasets_dir instead of downloading attn-shapes-cls.zip."""
    yolo = str(Path(sys.executable).parent / "yolo")
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "cfg"), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    r = subprocess.run([yolo, "settings", f"datasets_dir={tmp_path / 'ds'}"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    cmd = [yolo, "train", "task=classify", "model=yolo11n-cls-attn.yaml", "data=attn-shapes-cls", "imgsz=64",
           "epochs=1", "batch=8", "fraction=0.05", "workers=0", "device=cpu", "plots=False", f"project={tmp_path}",
           "name=run", "exist_ok=True"]
    r = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "yolo-attn: generating dataset attn-shapes-cls" in r.stdout + r.stderr
    assert read_marker(tmp_path / "ds" / "attn-shapes-cls")["kind"] == "shapes-cls"
    assert (tmp_path / "run" / "weights" / "last.pt").is_file()


@pytest.mark.parametrize(
    "imports, autoload",
    [("import ultralytics.data.utils as u", "1"),
     ("import ultralytics.data.utils as u, ultralytics.engine.trainer\nimport yolo_attn", "0")],
    ids=["data-utils-first", "plugin-imported-last"],
)
def test_name_hook_whatever_imports_first(imports, autoload):
    """The hook holds in a fresh process that imports `ultralytics.data.utils` first, so that registration runs inside
    its half-executed import (it imports nn.tasks at its top: the case a check_cls_dataset patch could not survive),
    and with auto-loading off, everything loaded, then `import yolo_attn`."""
    code = imports + "\nfrom ultralytics.utils import downloads\nassert u.download is downloads.download\n"
    code += "print(u.download._yolo_attn)"
    env = {**os.environ, "YOLO_ATTN_AUTOLOAD": autoload}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split()[-1:] == ["True"], r.stdout[-2000:] + r.stderr[-2000:]


DDP_PARENT = """
import shutil, subprocess, sys
from ultralytics.data.utils import DATASETS_DIR
from ultralytics.models.yolo.classify import ClassificationTrainer
from ultralytics.utils.dist import generate_ddp_file

args = dict(model="yolo11n-cls-attn.yaml", data="attn-shapes-cls", imgsz=64, epochs=1, batch=8, fraction=0.05,
            workers=0, device="cpu", plots=False, val=False, project=sys.argv[1], name="ddp", exist_ok=True)
trainer = ClassificationTrainer(overrides=args)  # builds the set here, in the parent
trainer.model = trainer.get_model(cfg=args["model"], verbose=False)
file = generate_ddp_file(trainer)
shutil.rmtree(DATASETS_DIR / "attn-shapes-cls")  # so the worker must build it again, on its own
subprocess.run([sys.executable, file], check=True)
"""


def test_ddp_worker_builds_by_bare_name(tmp_path):
    """Ultralytics' DDP worker file (a fresh process that unpickles the trainer, importing nothing of ours by itself)
    resolves `data=attn-shapes-cls` too: run that file on CPU after removing the set the parent built."""
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "cfg"), "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    yolo = str(Path(sys.executable).parent / "yolo")
    subprocess.run([yolo, "settings", f"datasets_dir={tmp_path / 'ds'}"], env=env, check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-c", DDP_PARENT, str(tmp_path)], env=env, cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (r.stdout + r.stderr).count("yolo-attn: generating dataset attn-shapes-cls") == 2  # parent, then worker
    assert read_marker(tmp_path / "ds" / "attn-shapes-cls")["kind"] == "shapes-cls"
    assert (tmp_path / "ddp" / "weights" / "last.pt").is_file()
