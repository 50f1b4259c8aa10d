"""The keypoint set (its determinism: tests/datasets/test_datasets.py): read by Ultralytics' own label check, keypoints
inside their boxes or 0 0 0, flip_idx right under Ultralytics' own RandomFlip; the data YAMLs (built and packaged)
carry kpt_shape and flip_idx."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from ultralytics.data.augment import RandomFlip
from ultralytics.data.utils import check_det_dataset
from ultralytics.utils.instance import Instances

from dataset_helpers import read_label
from yolo_attn.datasets.pose import FLIP_IDX, KPT_NAMES, KPT_SHAPE, POSE_NAMES, build_shapes_pose, handedness


@pytest.fixture(scope="module")
def pose(tmp_path_factory) -> Path:
    return build_shapes_pose(tmp_path_factory.mktemp("pose") / "ds", n_train=40, n_val=4, imgsz=96)


def _labels(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(boxes (N, 5) cls cx cy w h, keypoints (N, 3, 3)) of every training image, read by verify_image_label."""
    out = []
    for im in sorted((root / "images" / "train").glob("*.jpg")):
        lb = root / "labels" / "train" / f"{im.stem}.txt"
        got = read_label(str(im), str(lb), "", True, len(POSE_NAMES), *KPT_SHAPE)
        assert got[0] is not None and got[9] == "", got[9]  # not corrupt, nothing dropped
        out.append((got[1], got[4]))
    return out


def test_keypoints_inside_boxes_or_zero(pose):
    hidden = 0
    for boxes, kpts in _labels(pose):
        assert len(boxes) and kpts.shape == (len(boxes), *KPT_SHAPE)
        lo, hi = boxes[:, None, 1:3] - boxes[:, None, 3:5] / 2, boxes[:, None, 1:3] + boxes[:, None, 3:5] / 2
        seen = kpts[..., 2] == 2
        assert set(np.unique(kpts[..., 2])) <= {0.0, 2.0}
        assert (kpts[~seen] == 0).all()  # outside the image: 0 0 0
        xy = kpts[..., :2]
        assert ((xy >= lo - 1e-5) & (xy <= hi + 1e-5)).all(-1)[seen].all()
        hidden += int((~seen).sum())
    assert hidden > 0  # the set does cut shapes at the border, so the 0 0 0 case is exercised


def test_left_is_left_of_the_apex_direction(pose):
    whole = [k for _, kpts in _labels(pose) for k in kpts if (k[:, 2] == 2).all()]
    assert len(whole) > 20 and all(handedness(k) < 0 for k in whole)


@pytest.mark.parametrize("flip_idx", [list(FLIP_IDX), None], ids=["flip_idx", "no-flip_idx"])
def test_flip_idx_under_ultralytics_randomflip(pose, flip_idx):
    """A horizontally flipped image, relabelled with flip_idx, obeys the labelling rule again; without it, never."""
    checked = 0
    for boxes, kpts in _labels(pose):
        whole = (kpts[..., 2] == 2).all(1)
        if not whole.any():
            continue
        inst = Instances(boxes[whole, 1:].copy(), np.zeros((int(whole.sum()), 0, 2), np.float32), kpts[whole].copy())
        out = RandomFlip(p=1.0, direction="horizontal", flip_idx=flip_idx)({"img": np.zeros((96, 96, 3), np.uint8),
                                                                            "instances": inst})
        signs = {handedness(k) for k in out["instances"].keypoints}
        assert signs == ({-1.0} if flip_idx else {1.0})
        checked += 1
    assert checked > 10


def test_data_yamls_carry_kpt_shape_and_flip_idx(pose):
    data = check_det_dataset(str(pose / "data.yaml"))  # Ultralytics' own checks (flip_idx length, names)
    assert list(data["kpt_shape"]) == list(KPT_SHAPE) and list(data["flip_idx"]) == list(FLIP_IDX)
    assert data["kpt_names"] == {i: list(KPT_NAMES) for i in range(len(POSE_NAMES))}
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "yolo_attn/configs/attn-shapes-pose.yaml").read_text())
    assert cfg["kpt_shape"] == list(KPT_SHAPE) and cfg["flip_idx"] == list(FLIP_IDX)
    assert cfg["kpt_names"] == data["kpt_names"]
    assert tuple(cfg["names"].values()) == POSE_NAMES and "build_shapes_pose(yaml[\"path\"])" in cfg["download"]
