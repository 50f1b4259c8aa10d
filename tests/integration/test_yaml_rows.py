"""Model YAML rows through the real Ultralytics: a misspelled yolo-attn layer name is named with a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

import yolo_attn  # noqa: F401  registers the layers
import yolo_attn_autoload
from ultralytics import YOLO

YAML = """\
nc: 2
backbone:
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
  - [-1, 1, {name}, [standard, 16]]
head:
  - [[2], 1, Detect, [nc]]
"""


def write_yaml(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"typo-{name}.yaml"
    path.write_text(YAML.format(name=name))
    return str(path)


@pytest.mark.parametrize("typo", ["SelfAtentionBlock", "selfattentionblock", "SelfAttentionBlok"])
def test_misspelled_layer_names_the_row_and_suggests_ours(tmp_path, typo):
    with pytest.raises(KeyError) as info:
        YOLO(write_yaml(tmp_path, typo))
    e = info.value
    assert isinstance(e, yolo_attn_autoload.YoloAttnUnknownLayerError) and isinstance(e, ValueError)
    assert str(e) == (
        f"yolo-attn: model YAML row 2 [-1, 1, {typo}, ['standard', 16]]: no layer named {typo!r}; "
        "did you mean SelfAttentionBlock?"
    )


def test_unknown_name_far_from_ours_stays_ultralytics_error(tmp_path):
    with pytest.raises(KeyError) as info:
        YOLO(write_yaml(tmp_path, "FancyBlock"))
    assert type(info.value) is KeyError and info.value.args == ("FancyBlock",)


def test_correct_name_still_builds(tmp_path):
    model = YOLO(write_yaml(tmp_path, "SelfAttentionBlock"))
    assert type(model.model.model[2]).__name__ == "SelfAttentionBlock"
