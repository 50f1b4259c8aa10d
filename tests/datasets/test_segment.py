"""The segmentation set (its determinism: test_datasets.py): read by Ultralytics' own label check, polygons that are the
drawn outlines, inside the image, never sharing a pixel; and the packaged data YAML that builds it."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from ultralytics.data.utils import polygon2mask

from dataset_helpers import read_label
from yolo_attn.datasets import draw
from yolo_attn.datasets.instances import clip_polygon, polygon_area
from yolo_attn.datasets.segment import SEG_NAMES, build_shapes_seg, seamed

SIDE = 160


@pytest.fixture(scope="module")
def seg(tmp_path_factory) -> Path:
    return build_shapes_seg(tmp_path_factory.mktemp("seg") / "ds", n_train=16, n_val=4, imgsz=SIDE)


def _polygons(label: Path) -> list[tuple[int, np.ndarray]]:
    rows = [line.split() for line in label.read_text().splitlines()]
    return [(int(r[0]), np.array(r[1:], float).reshape(-1, 2)) for r in rows]


def test_ultralytics_reads_every_label(seg):
    for im in sorted((seg / "images" / "train").glob("*.jpg")):
        lb = seg / "labels" / "train" / f"{im.stem}.txt"
        out = read_label(str(im), str(lb), "", False, len(SEG_NAMES), 0, 0)
        assert out[0] is not None and out[9] == "", out[9]  # not corrupt, no message (no duplicates dropped)
        assert len(out[3]) == len(out[1]) > 0  # one polygon per instance
        for poly in out[3]:
            assert len(poly) >= 3 and (poly >= 0).all() and (poly <= 1).all()


def test_instances_never_share_a_pixel(seg):
    for lb in sorted((seg / "labels" / "train").glob("*.txt")):
        masks = [polygon2mask((SIDE, SIDE), [(poly * SIDE).ravel()]) for _, poly in _polygons(lb)]
        assert np.sum(masks, 0).max() == 1


@pytest.mark.parametrize("size", [30.0, 100.0])
@pytest.mark.parametrize("cls", range(len(SEG_NAMES)), ids=SEG_NAMES)
def test_polygon_is_the_drawn_outline(cls, size):
    """Rasterised at sub-pixel precision, the label and what draw_shape filled differ only within 2 px of the
    outline (a ring's hole is empty in both). Ultralytics' polygon2mask truncates to whole pixels, hence not it."""
    rng = np.random.default_rng(cls)
    img = np.zeros((SIDE, SIDE, 3), np.float32)
    poly, _, _ = draw.shape_outline(cls, size, rng)
    boundary = seamed(draw.draw_shape(img, cls, poly, np.array([80.3, 79.6]), size, (255, 255, 255), rng, 0.0))
    drawn = (img[..., 0] > 127).astype(np.uint8)
    label = cv2.fillPoly(np.zeros((SIDE, SIDE), np.uint8), [draw.pts(boundary)], 1, cv2.LINE_8, draw.SHIFT)
    near = np.ones((5, 5), np.uint8)
    assert (cv2.erode(label, near) <= drawn).all() and (drawn <= cv2.dilate(label, near)).all()
    if size == 100.0:
        assert (drawn & label).sum() / (drawn | label).sum() > 0.95
    if cls == 5:  # ring: the centre is a hole in the drawing and in the label
        assert not drawn[80, 80] and not label[80, 80]


def test_clip_polygon_keeps_the_part_inside():
    square = np.array([(-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0)])
    assert polygon_area(clip_polygon(square, 100)) == pytest.approx(100.0)  # a quarter inside
    assert polygon_area(clip_polygon(square + 50, 100)) == pytest.approx(400.0)
    assert len(clip_polygon(square - 50, 100)) == 0


def test_packaged_yaml_matches_builder():
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "yolo_attn/configs/attn-shapes-seg.yaml").read_text())
    assert tuple(cfg["names"].values()) == SEG_NAMES and "build_shapes_seg(yaml[\"path\"])" in cfg["download"]
