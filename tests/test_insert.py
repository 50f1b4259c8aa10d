"""The insertion tool `yolo_attn.insert`: index fixing on plain dicts, errors, the CLI, the generated shipped configs,
their names under the real Ultralytics, and every model YAML the installed Ultralytics ships.
"""

from __future__ import annotations

import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import pytest
import torch
import yaml

import yolo_attn
from yolo_attn.insert import DEFAULT_BLOCK, SHIPPED, add_attention, insert, parse_block, regenerate, render

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
ATTN = ["SelfAttentionBlock", ["standard", 64, None, None, True, 400]]

# ---------------------------------------------------------------- plain dicts (no Ultralytics involved)

TOY = {
    "nc": 3,
    "scales": {"n": [0.5, 0.25, 1024]},
    "backbone": [
        [-1, 1, "Conv", [16, 3, 2]],  # 0
        [-1, 1, "Conv", [32, 3, 2]],  # 1
        [-1, 1, "Conv", [64, 3, 2]],  # 2
    ],
    "head": [
        [[-1, 1], 1, "Concat", [1]],  # 3 reads 2 and 1
        [-2, 1, "Conv", [64, 1, 1]],  # 4 reads 2 (negative, not -1)
        [[3, 4, -3], 1, "Detect", ["nc"]],  # 5 reads 3, 4 and 2
    ],
}


def test_after_rows_every_later_reference_reads_the_new_row():
    d, info = insert(TOY, "1,2")
    rows = d["backbone"] + d["head"]
    assert [r[2] for r in rows] == ["Conv", "Conv", "SelfAttentionBlock", "Conv", "SelfAttentionBlock", "Concat",
                                    "Conv", "Detect"]
    assert rows[2][0] == -1 and rows[4][0] == -1  # each new row reads the row it follows
    assert rows[3][0] == -1  # old row 2 reads old 1, now the attention after it (row 2)
    assert rows[5][0] == [-1, 2]  # -1 -> attention after old 2 (row 4); absolute 1 -> attention after old 1 (row 2)
    assert rows[6][0] == -2  # old -2 from row 4 (= old row 2) -> row 4, from row 6
    assert rows[7][0] == [5, 6, -3]  # absolute 3, 4 shifted; -3 from row 7 = row 4 (attention after old row 2)
    assert len(d["backbone"]) == 5 and d["nc"] == 3 and d["scales"] == TOY["scales"]
    assert info.after == (1, 2) and info.new_rows == (2, 4)
    assert TOY["backbone"][1] == [-1, 1, "Conv", [32, 3, 2]]  # the input is not modified


def test_neck_and_backbone_placements():
    assert insert(TOY, "neck")[1].after == (2, 3, 4)  # the head's inputs: 3, 4 and -3 (= 2)
    d, info = insert(TOY, "backbone")
    assert info.after == (2,) and d["backbone"][-1] == [-1, 1, *ATTN] and d["head"][-1][0] == [4, 5, -3]


@pytest.mark.parametrize(
    "where, match",
    [
        ("5", r"cannot insert after row\(s\) 5 of .*: valid rows are 0..4 \(row 5 is the output layer Detect, "
              r"which reads \[3, 4, -3\]\)"),
        ("-1", r"cannot insert after row\(s\) -1 .*valid rows are 0..4"),
        ("1,1", r"names a row twice \(1, 1\)"),
        ("necks", r"placement 'necks' .*use 'neck', 'backbone' or row indices 'I,J,...' from 0 to 4"),
        ("", r"placement '' .*use 'neck'"),
    ],
)
def test_bad_placements_list_the_valid_rows(where, match):
    with pytest.raises(ValueError, match=match):
        add_attention(TOY, where)


def test_block_strings():
    assert parse_block(DEFAULT_BLOCK) == ATTN
    assert parse_block("SelfAttentionBlock[efficient, 64]") == ["SelfAttentionBlock", ["efficient", 64]]
    assert parse_block("PositionalEncoding2d") == ["PositionalEncoding2d", []]
    with pytest.raises(ValueError, match=r"block layer 'C2f' is not a yolo-attn layer; use one of [A-Za-z0-9, ]*SelfAttentionBlock"):
        parse_block("C2f[64]")
    with pytest.raises(ValueError, match=r"is not 'Layer\[arg, ...\]'"):
        parse_block("SelfAttentionBlock(efficient)")
    with pytest.raises(ValueError, match="arguments are not a YAML list"):
        parse_block("SelfAttentionBlock[efficient, [64]")


def test_rendered_yaml_reads_back_and_says_what_was_inserted():
    d, info = insert(TOY, "1,2", "SelfAttentionBlock[efficient, 32]")
    text = render(d, info, "toy-attn.yaml")
    assert yaml.safe_load(text) == d
    assert text.splitlines()[1] == ("# yolo-attn: SelfAttentionBlock[efficient, 32] after rows 1, 2 of the given "
                                    "model dict (1,2), now rows 2, 4.")
    assert "  - [-1, 1, SelfAttentionBlock, [efficient, 32]] # 2 inserted" in text


def test_unknown_config_name():
    with pytest.raises(FileNotFoundError, match=r"no model YAML 'yolo99-seg.yaml'"):
        add_attention("yolo99-seg.yaml")


# ---------------------------------------------------------------- shipped configs and Ultralytics' YAMLs


def test_default_neck_on_yolov8_is_the_shipped_default():
    assert add_attention("yolov8.yaml") == yaml.safe_load((CONFIGS / "yolov8-attn.yaml").read_text())
    assert add_attention("yolov8s.yaml") == add_attention("yolov8.yaml")  # a scaled name reads the same YAML


def test_shipped_configs_equal_what_the_tool_generates(tmp_path):
    assert regenerate(check=True) == []
    for name in SHIPPED:  # and a fresh generation from nothing writes the same files
        (tmp_path / name).write_text(
            "".join(line for line in (CONFIGS / name).read_text().splitlines(True) if line.startswith("# Cost at"))
        )
    assert sorted(regenerate(out_dir=tmp_path)) == sorted(SHIPPED)
    for name in SHIPPED:
        assert (tmp_path / name).read_text() == (CONFIGS / name).read_text(), name


def test_cli_add_and_its_errors(tmp_path):
    out = tmp_path / "new" / "folder" / "my-pose-attn.yaml"  # -o makes the folders it names
    cmd = [sys.executable, "-m", "yolo_attn", "add", "yolov8n-pose.yaml", "--where", "15,18",
           "--block", "SelfAttentionBlock[efficient, 32]", "-o", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load(out.read_text()) == add_attention("yolov8-pose.yaml", [15, 18],
                                                            "SelfAttentionBlock[efficient, 32]")
    assert "after rows 15, 18 of yolov8-pose.yaml" in p.stdout
    p = subprocess.run([*cmd[:5], "--where", "99"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and "cannot insert after row(s) 99 of yolov8-pose.yaml: valid rows are 0..21" in p.stderr


from ultralytics import YOLO  # noqa: E402
from ultralytics.nn import tasks  # noqa: E402

HEAD_MODELS = {  # output row -> the Ultralytics model class that builds it
    "Detect": "DetectionModel", "v10Detect": "DetectionModel", "Segment": "SegmentationModel",
    "Segment26": "SegmentationModel", "Pose": "PoseModel", "Pose26": "PoseModel", "OBB": "OBBModel",
    "OBB26": "OBBModel", "Classify": "ClassificationModel", "RTDETRDecoder": "RTDETRDetectionModel",
    "WorldDetect": "WorldModel", "YOLOEDetect": "YOLOEModel", "YOLOESegment": "YOLOESegModel",
    "YOLOESegment26": "YOLOESegModel",
}
MODELS = {h: getattr(tasks, m) for h, m in HEAD_MODELS.items() if hasattr(tasks, m)}  # older releases lack some
NOT_THESE_TASKS = {"Depth", "SemanticSegment"}  # heads of other tasks (depth, semantic segmentation)
UL_MODELS = Path(tasks.__file__).parents[1] / "cfg" / "models"
# What add_attention + the default block cannot build, and why (asserted exactly: a new refusal fails the test).
NARROW = "head_dim 64 does not divide a {c}-channel map at the first scale; a smaller head_dim builds"
REFUSED = {
    ("yolo11-cls-resnet18.yaml", "neck"): "TorchVision layer downloads pretrained weights (no network here)",
    ("yolo11-cls-resnet18.yaml", "backbone"): "TorchVision layer downloads pretrained weights (no network here)",
    ("yolo26-p2.yaml", "neck"): NARROW.format(c=32),
    ("yolov6.yaml", "neck"): NARROW.format(c=32),
    ("yolov8-ghost-p2.yaml", "neck"): NARROW.format(c=32),
    ("yolov8-p2.yaml", "neck"): NARROW.format(c=32),
    ("yolov9m.yaml", "neck"): NARROW.format(c=240),
    ("yolov9m.yaml", "backbone"): NARROW.format(c=480),
    ("yolov9t.yaml", "neck"): NARROW.format(c=96),
}


def ultralytics_yamls() -> list[Path]:
    """Every model YAML of the installed Ultralytics whose output row is a detect/seg/pose/obb/cls head."""
    out = []
    for path in sorted(UL_MODELS.rglob("*.yaml")):
        head = yaml.safe_load(path.read_text())["head"][-1][2]
        assert head in MODELS or head in NOT_THESE_TASKS, f"{path.name}: new output row {head}; add it to MODELS"
        if head in MODELS:
            out.append(path)
    return out


def build_first_scale(d: dict) -> torch.nn.Module:
    d = deepcopy(d)
    if d.get("scales"):
        d["scale"] = next(iter(d["scales"]))
    return MODELS[d["head"][-1][2]](d, verbose=False).eval()


def forward_size(d: dict) -> int:
    """64 px, or 160 for RT-DETR: its decoder picks 300 queries among the pixels of all levels, and releases before
    its clamp (8.3.0 among them) need that many (160 px: 525)."""
    return 160 if d["head"][-1][2] == "RTDETRDecoder" else 64


def test_every_ultralytics_model_yaml():
    """neck and backbone on each: builds at the first scale and runs forward (`forward_size`), or is a listed refusal."""
    refused, built = {}, 0
    paths = ultralytics_yamls()
    for path in paths:
        for where in ("neck", "backbone"):
            if "resnet18" in path.name:  # torchvision fetches weights while building: refused without trying
                refused[(path.name, where)] = REFUSED[(path.name, where)]
                continue
            d = add_attention(path, where)
            try:
                model = build_first_scale(d)
            except ValueError as e:
                assert "is not divisible by head_dim 64" in str(e), f"{path.name} {where}: {e}"
                c = int(str(e).split(" input channels")[0].rsplit(" ", 1)[1])
                refused[(path.name, where)] = NARROW.format(c=c)
                model = build_first_scale(add_attention(path, where, "SelfAttentionBlock[standard, 8]"))
            n_attn = sum(type(m) is yolo_attn.SelfAttentionBlock for m in model.model)
            assert n_attn == len(insert(path, where)[1].after) >= 1
            size = forward_size(d)
            with torch.no_grad():
                model(torch.zeros(1, 3, size, size))
            built += 1
    names = {p.name for p in paths}
    assert refused == {k: v for k, v in REFUSED.items() if k[0] in names}  # the listed ones this Ultralytics ships
    assert built >= 80  # such YAMLs, minus the refusals above, each twice: 59 YAMLs in 8.4.190, 41 in 8.3.0


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_by_scaled_bare_name_at_every_scale(name):
    """`yolo11s-pose-attn.yaml` resolves through Ultralytics' own name unification; n..x build (parameters only)."""
    family, _, rest = name.partition("-")
    stock_name = name.replace("-attn", "")
    assert Path(tasks.check_yaml(name)) == CONFIGS.resolve() / name  # found in the package by bare name
    shipped = yaml.safe_load((CONFIGS / name).read_text())
    for scale in "nsmlx":
        scaled = f"{family}{scale}-{rest}"  # yolo11s-pose-attn.yaml, yolov8x-attn.yaml
        d = tasks.yaml_model_load(scaled)
        assert d["scale"] == scale and d["yaml_file"] == scaled
        assert {k: v for k, v in d.items() if k not in ("scale", "yaml_file")} == shipped
        assert tasks.guess_model_task(d) == tasks.guess_model_task(tasks.yaml_model_load(stock_name))
        attn_rows = tasks.parse_model(deepcopy(d), ch=3, verbose=False)[0]
        stock = tasks.yaml_model_load(stock_name.replace(family, f"{family}{scale}", 1))
        stock["nc"] = shipped["nc"]  # older releases' YAMLs may say another (8.3.0's yolo11-cls: 80, not 1000)
        stock_rows = tasks.parse_model(deepcopy(stock), ch=3, verbose=False)[0]
        blocks = [m for m in attn_rows if type(m) is yolo_attn.SelfAttentionBlock]
        assert len(blocks) == (1 if "-cls" in name else 3)
        count = lambda rows: sum(p.numel() for p in rows.parameters())  # noqa: E731
        assert count(attn_rows) == count(stock_rows) + sum(count(b) for b in blocks)


@pytest.mark.parametrize("name, task", [("yolo11n-attn.yaml", "detect"), ("yolov8s-seg-attn.yaml", "segment"),
                                        ("yolo11n-pose-attn.yaml", "pose"), ("yolo11n-obb-attn.yaml", "obb"),
                                        ("yolov8n-cls-attn.yaml", "classify")])
def test_yolo_builds_shipped_configs_by_name(name, task):
    model = YOLO(name)
    assert model.task == task and model.model.yaml["scale"] == name[len(name.split("-")[0]) - 1]
