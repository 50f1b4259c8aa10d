"""Tests for the synthetic YOLO datasets in yolo_attn.datasets (offline, a few seconds in total)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_attn import datasets as ds
from yolo_attn.datasets import context as ds_context
from yolo_attn.datasets import shapes as ds_shapes
from yolo_attn.datasets.pose import build_shapes_pose
from yolo_attn.datasets.segment import build_shapes_seg

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(n_train=24, n_val=6, imgsz=128)  # tiny but still exercises every code path


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _labels(root: Path, split: str = "train") -> dict[str, np.ndarray]:
    out = {}
    for p in sorted((root / "labels" / split).glob("*.txt")):
        out[p.stem] = np.loadtxt(p, ndmin=2)
    return out


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ds.build_shapes(tmp_path_factory.mktemp("shapes") / "ds", **SMALL)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ds.build_context(tmp_path_factory.mktemp("context") / "ds", n_train=16, n_val=4, imgsz=160)


@pytest.mark.parametrize("builder", [ds.build_shapes, ds.build_context, build_shapes_seg, build_shapes_pose],
                         ids=["shapes", "context", "seg", "pose"])
def test_deterministic_and_thread_independent(tmp_path: Path, builder) -> None:
    a = builder(tmp_path / "a", n_train=6, n_val=2, imgsz=96, seed=3, workers=1)
    b = builder(tmp_path / "b", n_train=6, n_val=2, imgsz=96, seed=3, workers=3)
    c = builder(tmp_path / "c", n_train=6, n_val=2, imgsz=96, seed=4, workers=1)
    fa, fb = _files(a), _files(b)
    assert len(fa) == 2 * (6 + 2) + 2  # images + labels + marker + data.yaml
    assert fa == fb
    labels_a = {k: v for k, v in fa.items() if k.startswith("labels")}
    assert {k: v for k, v in _files(c).items() if k.startswith("labels")} != labels_a  # the seed matters


@pytest.mark.parametrize("name", ["shapes", "context"])
def test_layout_and_label_validity(name: str, request: pytest.FixtureRequest) -> None:
    root: Path = request.getfixturevalue(name)
    nc = len(ds.SHAPES_NAMES if name == "shapes" else ds.CONTEXT_NAMES)
    for split in ("train", "val"):
        imgs = sorted((root / "images" / split).glob("*.jpg"))
        labels = _labels(root, split)
        assert imgs and [p.stem for p in imgs] == sorted(labels)
        for lab in labels.values():
            assert lab.shape[1] == 5 and len(lab) >= 1
            cls, xywh = lab[:, 0], lab[:, 1:]
            assert np.all(cls == cls.astype(int)) and cls.min() >= 0 and cls.max() < nc
            assert np.all((xywh >= 0) & (xywh <= 1))
            assert np.all(xywh[:, 2:] > 0.01)  # non-degenerate
            x1, x2 = xywh[:, 0] - xywh[:, 2] / 2, xywh[:, 0] + xywh[:, 2] / 2
            y1, y2 = xywh[:, 1] - xywh[:, 3] / 2, xywh[:, 1] + xywh[:, 3] / 2
            assert x1.min() >= -1e-6 and y1.min() >= -1e-6 and x2.max() <= 1 + 1e-6 and y2.max() <= 1 + 1e-6
    assert cv2.imread(str(imgs[0])).shape == (int(ds.read_marker(root)["imgsz"]),) * 2 + (3,)


def test_shapes_statistics(shapes: Path) -> None:
    labels = list(_labels(shapes).values())
    allc = np.concatenate(labels)
    assert set(allc[:, 0].astype(int)) == set(range(len(ds.SHAPES_NAMES)))
    counts = np.array([len(lab) for lab in labels])
    assert counts.min() >= 1 and counts.max() <= 10 and counts.max() >= 6 and counts.mean() > 3
    size = allc[:, 3:].max(1)  # longest box side, as a fraction of the image side
    assert size.min() < 0.07 and size.max() > 0.3 and size.max() <= 0.41


def test_context_cue_matches_class_and_is_far(context: Path) -> None:
    side = ds.read_marker(context)["imgsz"]
    r = ds.CONTEXT_CUE_RADIUS * side
    cues = np.array(ds.CONTEXT_CUE_BGR, np.float64)
    seen = set()
    for split in ("train", "val"):
        for stem, lab in _labels(context, split).items():
            img = cv2.imread(str(context / "images" / split / f"{stem}.jpg")).astype(np.float64)
            # The cue is the only saturated corner disc; the other three are grey decoys.
            means = []
            for k in range(4):
                cx, cy = (int(v) for v in ds.context_cue_center(k, side))
                h = int(r / 2)
                means.append(img[cy - h : cy + h, cx - h : cx + h].reshape(-1, 3).mean(0))
            sat = [m.max() - m.min() for m in means]
            k = int(np.argmax(sat))
            assert sat[k] > 100 and sorted(sat)[-2] < 40
            cls = int(np.argmin(((cues - means[k]) ** 2).sum(1)))
            assert set(lab[:, 0].astype(int)) == {cls}
            seen.add(cls)
            center = ds.context_cue_center(k, side)
            for _, x, y, w, h in lab * [1, side, side, side, side]:
                gap = ds_context.disc_gap(center, r, (x - w / 2, y - h / 2, x + w / 2, y + h / 2))
                assert gap >= 0.4 * side - 0.5
    assert seen == set(range(len(ds.CONTEXT_NAMES)))


def test_skip_rebuild_and_refuse(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    ds.build_shapes(root, n_train=2, n_val=1, imgsz=64)
    marker = root / ds.MARKER
    stamp = marker.stat().st_mtime_ns
    assert ds.build_shapes(str(root), n_train=2, n_val=1, imgsz=64) == root  # complete: skipped
    assert marker.stat().st_mtime_ns == stamp
    ds.build_shapes(root, n_train=3, n_val=1, imgsz=64)  # our own build, other params: replaced
    assert len(list((root / "images" / "train").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp or trash dirs left

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        ds.build_shapes(foreign, n_train=2, n_val=1, imgsz=64)
    assert (foreign / "keep.txt").exists()


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ds_shapes.render_shapes

    def boom(rng, side, index):
        if index == 2:
            raise KeyboardInterrupt
        return real(rng, side, index)

    monkeypatch.setattr(ds_shapes, "render_shapes", boom)
    with pytest.raises(KeyboardInterrupt):
        ds.build_shapes(tmp_path / "ds", n_train=4, n_val=1, imgsz=64, workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(n_train=0), ValueError),
        (dict(n_val=-1), ValueError),
        (dict(imgsz=32), ValueError),
        (dict(imgsz=64.0), TypeError),  # the shared yolo_attn._checks: a wrong type is a TypeError
        (dict(seed=-1), ValueError),
        (dict(workers=0), ValueError),
        (dict(n_train=True), TypeError),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, error: type) -> None:
    name = next(iter(kwargs))
    with pytest.raises(error, match=f"build_shapes: {name} must be"):
        ds.build_shapes(tmp_path / "ds", **{"n_train": 1, "n_val": 1, "imgsz": 64, **kwargs})
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("gap", [-0.1, 0.6, "0.4"])
def test_bad_min_gap(tmp_path: Path, gap) -> None:
    with pytest.raises(ValueError, match="min_gap"):
        ds.build_context(tmp_path / "ds", n_train=1, n_val=1, imgsz=64, min_gap=gap)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert ds.main(["context", str(tmp_path / "c"), "--n-train", "3", "--n-val", "1", "--imgsz", "96"]) == 0
    out = capsys.readouterr().out
    assert "ready" in out and f"data={tmp_path / 'c' / 'data.yaml'} imgsz=96 mosaic=0 scale=0 translate=0" in out
    assert len(list((tmp_path / "c" / "labels" / "train").glob("*.txt"))) == 3
    assert ds.main(["shapes", str(tmp_path / "s"), "--n-train", "2", "--n-val", "1", "--imgsz", "64"]) == 0
    assert f"yolo train model=yolov8n.yaml data={tmp_path / 's' / 'data.yaml'} imgsz=64\n" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ds.main(["shapes", str(tmp_path / "s"), "--imgsz", "8"])


def test_data_yaml_paths() -> None:
    for name in ("shapes", "context"):
        assert ds.data_yaml(name).is_file()
    with pytest.raises(ValueError):
        ds.data_yaml("coco")


def test_module_does_not_import_torch_or_ultralytics() -> None:
    code = textwrap.dedent(
        f"""
        import sys, types
        stub = types.ModuleType("yolo_attn")  # the package without its __init__ (which imports torch)
        stub.__path__ = [{str(REPO / "yolo_attn")!r}]
        sys.modules["yolo_attn"] = stub
        import yolo_attn.datasets, yolo_attn.datasets.__main__
        bad = [m for m in ("torch", "ultralytics") if m in sys.modules]
        assert not bad, bad
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_ultralytics_check_det_dataset_runs_download(tmp_path: Path) -> None:
    """The packaged YAMLs build their data through Ultralytics' download hook, all inside tmp_path."""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("ultralytics not installed")
    yamls = {}
    for name in ("shapes", "context"):
        text = ds.data_yaml(name).read_text()
        assert f"path: attn-{name} " in text
        yamls[name] = tmp_path / f"attn-{name}.yaml"
        yamls[name].write_text(text.replace(f"path: attn-{name} ", f"path: {tmp_path / 'data' / name} ", 1))
    # A fresh interpreter, so Ultralytics' settings/config writes land in tmp_path; shrink the builders'
    # defaults there (the YAML snippet calls them without sizes) to keep the test fast.
    code = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        import yolo_attn.datasets as d
        d.build_shapes.__defaults__ = (8, 3, 96, 0, None)
        d.build_context.__defaults__ = (8, 3, 96, 0, 0.4, None)
        import ultralytics.data.utils as u
        u.check_font = lambda *a, **k: None  # would try to download Arial.ttf
        out = {{}}
        for name, y in {({k: str(v) for k, v in yamls.items()})!r}.items():
            data = u.check_det_dataset(y)
            out[name] = dict(nc=data["nc"], names=data["names"], path=str(data["path"]), val=data["val"])
            u.check_det_dataset(y)  # second call: val exists, nothing is rebuilt
            # The data.yaml every build writes into its root has no `path`: its folder is the root.
            own = u.check_det_dataset(str(Path(data["path"]) / "data.yaml"))
            out[name]["own"] = dict(nc=own["nc"], path=str(own["path"]), val=own["val"])
        # The shipped YAMLs, unmodified: their relative path resolves under DATASETS_DIR.
        u.DATASETS_DIR = Path({str(tmp_path / "datasets")!r})
        for name in ("shapes", "context"):
            out["shipped_" + name] = str(u.check_det_dataset(str(d.data_yaml(name)))["path"])
        print("RESULT" + json.dumps(out))
        """
    )
    env = {
        **os.environ,
        "HOME": str(tmp_path / "home"),
        "YOLO_CONFIG_DIR": str(tmp_path / "cfg"),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "YOLO_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.split("RESULT", 1)[1])  # JSON turns the int name keys into strings
    for name, names in (("shapes", ds.SHAPES_NAMES), ("context", ds.CONTEXT_NAMES)):
        got = out[name]
        root = tmp_path / "data" / name
        assert got["nc"] == len(names)
        assert {int(k): v for k, v in got["names"].items()} == dict(enumerate(names))
        assert Path(got["path"]) == root and Path(got["val"]) == root / "images" / "val"
        assert got["own"] == dict(nc=got["nc"], path=got["path"], val=got["val"])
        assert len(list((root / "images" / "train").glob("*.jpg"))) == 8
        assert len(list((root / "labels" / "val").glob("*.txt"))) == 3
        assert ds.read_marker(root)["kind"] == name
        shipped = tmp_path / "datasets" / f"attn-{name}"
        assert Path(out["shipped_" + name]) == shipped and ds.read_marker(shipped)["n_train"] == 8
