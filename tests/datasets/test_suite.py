"""Tests for the accuracy suite in yolo_attn.datasets.suite: every task, its labels and that its cue names the class.

The cue checks recompute each class from the rendered image (disc colours and positions, the image's mean colour)
or from the drawn geometry, never from the labelling code's own bookkeeping.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_attn import datasets as ds
from yolo_attn.datasets import draw, relations, suite, tint
from yolo_attn.datasets.__main__ import main

SIDE = 160  # small but every task still places its objects
CUES = np.array(ds.CONTEXT_CUE_BGR, np.float64)


def _build(tmp: Path, name: str, n: int = 16, seed: int = 0, workers: int = 2) -> Path:
    return suite.build_task(name, tmp / name, n_train=n, n_val=4, imgsz=SIDE, seed=seed, workers=workers)


def _samples(root: Path, split: str = "train"):
    for lab in sorted((root / "labels" / split).glob("*.txt")):
        img = cv2.imread(str(root / "images" / split / f"{lab.stem}.jpg"))
        yield int(lab.stem), img, np.loadtxt(lab, ndmin=2)


def _centres(lab: np.ndarray, side: int) -> np.ndarray:
    return lab[:, 1:3] * side


def _discs(img: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Saturated blobs of the image: (centre, nearest cue colour index), largest first."""
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    mask = ((hsv[..., 1] > 120) & (hsv[..., 2] > 80)).astype(np.uint8)
    n, comp, st, cen = cv2.connectedComponentsWithStats(mask)
    out = []
    for k in sorted(range(1, n), key=lambda k: -st[k, cv2.CC_STAT_AREA]):
        if st[k, cv2.CC_STAT_AREA] >= 40:
            mean = img[comp == k].reshape(-1, 3).mean(0)
            out.append((cen[k], int(np.argmin(((CUES - mean) ** 2).sum(1)))))
    return out


def test_registry_declares_every_field() -> None:
    kinds = [t.kind for t in suite.TASKS.values()]
    assert kinds.count("neutral") >= 3 and kinds.count("context") >= 5
    for t in suite.TASKS.values():
        assert t.kind in ("neutral", "context") and t.measures and t.names and t.protocols
        assert set(t.protocols) <= set(suite.PROTOCOLS) and t.n_train == 800 and t.n_val == 200
        assert t.imgsz in (320, 640)
        if t.kind == "context":
            assert t.no_cue_k == len(t.names) == 4 and t.found and t.protocols[0] == "cue"
            assert t.found_threshold(0.8) == pytest.approx(0.5)  # half way from 0.8 / 4 to 0.8
        else:
            assert t.no_cue_k == 1 and t.found_threshold(0.8) is None and t.protocols[0] == "default"
    assert suite.PROTOCOLS["cue"] == {"mosaic": 0.0, "scale": 0.0, "translate": 0.0}
    with pytest.raises(ValueError, match="unknown suite task 'coco'; choose one of shapes"):
        suite.get_task("coco")


def test_list_prints_one_task_a_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(suite.TASKS)
    for line, t in zip(lines, suite.TASKS.values()):
        assert line.split()[:2] == [t.name, t.kind] and line.endswith(t.measures)


def test_build_cli_prints_found_rule_and_protocol_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["build", "count", str(tmp_path / "c"), "--n-train", "4", "--n-val", "2", "--imgsz", "96"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "found the cue: mAP50-95 >=" in out
    data = tmp_path / "c" / "data.yaml"
    assert f"protocol cue: train on it: yolo train model=yolov8n.yaml data={data} imgsz=96 mosaic=0" in out
    assert ds.read_marker(tmp_path / "c")["kind"] == "count"
    with pytest.raises(SystemExit):
        main(["build", "coco", str(tmp_path / "x")])


@pytest.mark.parametrize("name", list(suite.TASKS))
def test_deterministic_bytes_and_valid_labels(tmp_path: Path, name: str) -> None:
    task = suite.TASKS[name]
    a = _build(tmp_path / "a", name, n=6, workers=1)
    b = _build(tmp_path / "b", name, n=6, workers=3)

    def files(r: Path) -> dict[str, bytes]:
        return {p.relative_to(r).as_posix(): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()}

    fa = files(a)
    assert fa == files(b) and len(fa) == 2 * (6 + 4) + 2
    assert files(_build(tmp_path / "c", name, n=6, seed=1, workers=1)) != fa
    assert "names:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(task.names)) in fa["data.yaml"].decode()
    for _, img, lab in _samples(a):
        assert img.shape == (SIDE, SIDE, 3) and lab.shape[1] == 5 and len(lab) >= 1
        assert np.all(lab[:, 0] == lab[:, 0].astype(int)) and 0 <= lab[:, 0].min() and lab[:, 0].max() < len(task.names)
        xy, wh = lab[:, 1:3], lab[:, 3:]
        assert np.all(wh > 0) and np.all(xy - wh / 2 >= -1e-6) and np.all(xy + wh / 2 <= 1 + 1e-6)


@pytest.mark.parametrize("name", [n for n, t in suite.TASKS.items() if t.kind == "context"])
def test_context_classes_all_occur(tmp_path: Path, name: str) -> None:
    root = _build(tmp_path, name, n=24)
    seen = {int(c) for _, _, lab in _samples(root) for c in lab[:, 0]}
    assert seen == set(range(4))


def test_neutral_task_statistics(tmp_path: Path) -> None:
    crowd = [lab for _, _, lab in _samples(_build(tmp_path, "crowd"))]
    assert np.mean([len(lab) for lab in crowd]) > 10 and max(len(lab) for lab in crowd) <= 30
    small = np.concatenate([lab for _, _, lab in _samples(_build(tmp_path, "small"))])
    assert small[:, 3:].max(1).max() <= 0.051 and small[:, 3:].max(1).min() >= 0.014
    assert suite.TASKS["small"].imgsz == 640 and suite.TASKS["shapes"].render is ds.shapes.render_shapes


def test_count_class_is_the_number_of_squares(tmp_path: Path) -> None:
    for i, _, lab in _samples(_build(tmp_path, "count")):
        assert set(lab[:, 0].astype(int)) == {i % 4} and len(lab) == i % 4 + 2


def test_nearest_colour_class_is_the_nearest_discs_colour(tmp_path: Path) -> None:
    for _, img, lab in _samples(_build(tmp_path, "nearest_colour")):
        discs = _discs(img)
        assert len(discs) == 4 and {k for _, k in discs} == set(range(4))  # every colour in every image
        centres = np.array([c for c, _ in discs])
        for cls, c in zip(lab[:, 0].astype(int), _centres(lab, SIDE)):
            d = np.hypot(*(centres - c).T)
            order = np.argsort(d)
            assert discs[order[0]][1] == cls
            assert d[order[1]] >= relations.NEAR_RATIO * d[order[0]] - 2  # unambiguous (px of JPEG slack)


def test_neighbour_shape_class_is_the_nearest_key_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[int, np.ndarray]] = []  # every shape drawn, recorded where it is drawn
    real = draw.draw_shape

    def spy(img, cls, poly, c, size, color, rng, outline_p=0.3):
        drawn.append((cls, np.array(c, float)))
        return real(img, cls, poly, c, size, color, rng, outline_p)

    monkeypatch.setattr(draw, "draw_shape", spy)
    for i in range(24):
        drawn.clear()
        _, boxes = relations.render_neighbour_shape(np.random.default_rng([7, i]), 320, i)
        keys = drawn[-4:]  # a layout that left no room is redrawn: the image holds the last attempt's keys
        assert len(drawn) % 4 == 0 and sorted(cls for cls, _ in keys) == sorted(relations.KEY_SHAPES)
        for cls, x1, y1, x2, y2 in boxes:
            c = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
            d = [np.hypot(*(k - c)) for _, k in keys]
            assert relations.NEIGHBOUR_SHAPE_NAMES[cls] == "near_" + draw.SHAPES_NAMES[keys[int(np.argmin(d))][0]]


def test_mirror_class_is_the_colour_at_the_point_reflection(tmp_path: Path) -> None:
    for _, img, lab in _samples(_build(tmp_path, "mirror")):
        discs = _discs(img)
        assert {k for _, k in discs} == set(range(4))  # partners + decoys show every colour
        centres = np.array([c for c, _ in discs])
        for cls, c in zip(lab[:, 0].astype(int), _centres(lab, SIDE)):
            assert np.hypot(*(c - SIDE / 2)) >= relations.MIRROR_MIN_R * SIDE - 1
            d = np.hypot(*(centres - (SIDE - c)).T)
            assert d.min() < 2 and discs[int(np.argmin(d))][1] == cls


def test_tint_class_is_the_image_mean_colour_and_not_a_local_one(tmp_path: Path) -> None:
    local_right = local_n = 0
    for _, img, lab in _samples(_build(tmp_path, "tint", n=32)):
        x = img.reshape(-1, 3).astype(np.float64)
        chroma = x.mean(0) - x.mean()
        cls = int(np.argmax(tint.TINT_DIRS @ chroma))
        assert set(lab[:, 0].astype(int)) == {cls}
        for q in (img[: SIDE // 3, : SIDE // 3], img[-SIDE // 3 :, -SIDE // 3 :]):  # a corner window only
            qx = q.reshape(-1, 3).astype(np.float64)
            local_right += int(np.argmax(tint.TINT_DIRS @ (qx.mean(0) - qx.mean()))) == cls
            local_n += 1
    assert local_right / local_n < 0.5  # a ninth of the image mostly misnames the cast (chance: 0.25)
