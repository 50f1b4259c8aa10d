"""Bad model YAML rows through the real Ultralytics: one error naming the row, the layer and the fix (never a shape
error from deep inside torch); misspelled layer names get a suggestion; a YAML naming our layers while auto-loading
is off explains why. CPU only and bounded: the fuzzer stops at `max_examples`.
"""

from __future__ import annotations

import copy
import re
import textwrap
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yolo_attn_autoload
from arg_strategies import CHOICES, assert_named, plausible
from integration_helpers import CONFIGS, python, tiny_cfg
from yolo_attn.integration.registry import layers, yaml_args

from ultralytics import YOLO  # noqa: E402  after yolo_attn
from ultralytics.nn.tasks import DetectionModel, yaml_model_load  # noqa: E402

NAMES = sorted(layers())

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


# ---------------------------------------------------------------- bad YAML rows: one error naming row, layer and fix

ROW16 = "yolo-attn: model YAML row 16 "


@pytest.fixture(scope="module")
def yolov8n_attn() -> dict:
    d = yaml_model_load(CONFIGS / "yolov8n-attn.yaml")
    assert d["scale"] == "n" and d["head"][6][2] == "SelfAttentionBlock"  # backbone has 10 rows: head[6] is row 16
    return d


def with_row16(d: dict, row: list) -> dict:
    d = copy.deepcopy(d)
    d["head"][6] = row
    return d


@pytest.mark.parametrize(
    "row, error, fix",
    [
        ([-1, 1, "SelfAttentionBlock", ["gobal"]], ValueError, r"unknown type 'gobal'; choose one of 'standard', 'spatial'"),
        ([-1, 2, "SelfAttentionBlock", ["gobal"]], ValueError, r"unknown type 'gobal'"),  # repeats: same row named
        ([-1, 1, "SelfAttentionBlock", ["standard", 48]], ValueError,
         r"SelfAttentionBlock.* 64 input channels: .*not divisible by head_dim 48; use head_dim in \[8, 16, 32, 64\]"),
        ([-1, 1, "SelfAttentionBlock", ["standard", 0]], ValueError, r"head_dim must be >= 1, got 0"),
        ([-1, 1, "SelfAttentionBlock", ["standard", -32]], ValueError, r"head_dim must be >= 1, got -32"),
        ([-1, 1, "SelfAttentionBlock", ["standard", None]], TypeError, r"head_dim must be an integer, got None"),
        ([-1, 1, "SelfAttentionBlock", ["standard", "big"]], TypeError, r"head_dim must be an integer, got 'big' \(str\)"),
        ([-1, 1, "SelfAttentionBlock", ["standard", 32.5]], TypeError, r"head_dim must be an integer, got 32.5 \(float\)"),
        ([-1, 1, "SelfAttentionBlock", ["spatial", 32, 3]], ValueError, r"not divisible by reduction 3; use a divisor of 64"),
        ([-1, 1, "SelfAttentionBlock", ["efficient", 32, None, 0]], ValueError, r"kv_stride \(scale\) must be >= 1, got 0"),
        ([-1, 1, "SelfAttentionBlock", ["standard", 32, None, None, "yes"]], TypeError, r"pos must be True or False"),
        ([-1, 1, "SelfAttentionBlock", ["standard", 32, None, None, True, -1]], ValueError, r"kv_tokens must be >= 0"),
        ([-1, 1, "SelfAttentionBlock", ["standard", 32, None, None, True, 0, 1.5]], ValueError, r"attn_drop must be in \[0.0, 1.0\)"),
        ([-1, 1, "SelfAttentionBlock", ["standard", 32, None, None, True, 0, 0.0, 16]], ValueError,
         r"mlp_ratio must be in \[0.0, 16.0\), got 16"),
        ([-1, 1, "SelfAttentionBlock", ["standard", 32, 1, 1, True, 0, 0.0, 2, 7]], TypeError,
         r"takes at most 8 YAML args after its input channels \(type='standard', head_dim=32"),
        ([-1, 1, "SpatialSelfAttention", [32, 2, True, 128]], ValueError, r"output channels equal its input \(64\); drop c2"),
        ([-1, 1, "EfficientSelfAttention", [32, -2]], ValueError, r"kv_stride \(scale\) must be >= 1, got -2"),
        ([-1, 1, "TransformerEncoderLayer", [3]], ValueError, r"TransformerEncoderLayer: d_model 64 is not divisible by nhead 3; pick nhead"),
        ([-1, 1, "TransformerEncoder", [5]], ValueError, r"TransformerEncoder: d_model 64 is not divisible by nhead 5"),
        ([-1, 1, "TransformerEncoder", [2, 0]], ValueError, r"TransformerEncoder: num_layers must be >= 1, got 0"),
        ([-1, 1, "TransformerEncoder", [2, 1, 128, 0.1, "tanh"]], ValueError, r"unknown activation 'tanh'; choose one of 'relu'"),
        ([-1, 1, "PositionalEncoding2d", [0.5]], ValueError, r"temperature must be a finite number > 1, got 0.5"),
        ([[-1, 12], 1, "SelfAttentionBlock", []], ValueError, r"reads one layer, so 'from' must be a single index, got \[-1, 12\]"),
    ],
)
def test_bad_yaml_rows_name_row_layer_and_fix(yolov8n_attn, row, error, fix):
    with pytest.raises(error) as info:
        DetectionModel(with_row16(yolov8n_attn, row), verbose=False)
    msg = str(info.value)
    assert msg.startswith(ROW16) and f", {row[2]}, " in msg, msg  # the row as written: [from, ..., Name, [args]]
    assert re.search(fix, msg), msg


def write_cfg(tmp_path: Path, row: str, name: str = "yolov8n-bad.yaml") -> Path:
    """The shipped yolov8-attn.yaml, as a file, with row 16 (its first SelfAttentionBlock) replaced by `row`."""
    text = (CONFIGS / "yolov8-attn.yaml").read_text()
    marker = "[-1, 1, SelfAttentionBlock, [standard, 64, null, null, True, 400]] # 16"
    assert marker in text
    path = tmp_path / name
    path.write_text(text.replace(marker, row + " # 16", 1))
    return path


@pytest.mark.parametrize(
    "row, error, match",
    [
        ("[-1, 1, SelfAttentionBlock, [standard, 48]]", ValueError,
         r"model YAML row 16 .*SelfAttentionBlock.* 64 input channels: .*not divisible by head_dim 48"),
        ("[-1, 1, SelfAttentionBlock, [standard, 32, 1, 1, True, 0, 0.0, 2, 7]]", TypeError,
         r"row 16 .*takes at most 8 YAML args after its input channels \(type='standard', head_dim=32"),
    ],
)
def test_bad_row_in_a_yaml_file_names_the_row(tmp_path, row, error, match):
    """The same errors when the model comes from a YAML file on disk (the path a user's config takes)."""
    with pytest.raises(error, match=match):
        DetectionModel(str(write_cfg(tmp_path, row)), verbose=False)


YAML_STRINGS = [*CHOICES, "gobal", "STANDARD", "nc", "32", "None"]  # no "": Ultralytics' literal_eval raises SyntaxError


def yaml_value(arg: str, default: object) -> st.SearchStrategy:
    implausible_yaml = st.one_of(
        st.integers(-3, 0),
        st.sampled_from([0.5, 32.0, float("nan"), float("inf")]),
        st.none(),
        st.booleans(),
        st.sampled_from(YAML_STRINGS),
        st.just([32]),
    )
    return st.one_of(st.just(default), plausible(arg, default), implausible_yaml)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_yaml_rows_build_or_raise_naming_the_row(data):
    """Through parse_model (tiny detector, row 3): either the layer is built and runs, or one clear error."""
    name = data.draw(st.sampled_from(NAMES))
    spec = yaml_args(layers()[name])
    args = [data.draw(yaml_value(*spec[j])) if j < len(spec) else 1 for j in range(data.draw(st.integers(0, len(spec) + 1)))]
    width, repeats = data.draw(st.sampled_from([8, 16, 24, 32])), data.draw(st.sampled_from([1, 2]))
    try:
        model = DetectionModel(tiny_cfg(name, args, width, repeats), verbose=False)
    except (TypeError, ValueError) as e:
        assert_named(e, "yolo-attn: model YAML row 3 ")
        assert name in str(e)
        return
    built = model.model[3]
    assert all(type(m) is layers()[name] for m in (built if repeats > 1 else [built]))


@pytest.fixture()
def fake_tasks(monkeypatch) -> types.ModuleType:
    """A stand-in for ultralytics.nn.tasks whose parse_model looks YAML names up as the real one does."""
    tasks = types.ModuleType("fake_tasks")
    exec(
        textwrap.dedent(
            """
            def lookup_elsewhere():
                return {}["SelfAttentionBlock"]  # a KeyError that is not parse_model's module-name lookup

            def parse_model(d, ch, verbose=True):
                for i, m in enumerate(d):
                    if m == "nested":
                        lookup_elsewhere()
                    globals()[m]
                return "built"

            Conv = object()
            """
        ),
        vars(tasks),
    )
    monkeypatch.setattr(yolo_attn_autoload, "_off_value", "0")
    monkeypatch.setattr(yolo_attn_autoload, "_failure", "")
    return tasks


def test_hint_names_the_layer_the_row_and_the_fix(fake_tasks):
    original = fake_tasks.parse_model
    yolo_attn_autoload.wrap_parse_model(fake_tasks)
    yolo_attn_autoload.wrap_parse_model(fake_tasks)  # idempotent
    wrapped = fake_tasks.parse_model
    assert wrapped.__wrapped__ is original and wrapped.__name__ == "parse_model"
    assert wrapped(["Conv"], [3]) == "built"
    with pytest.raises(KeyError) as info:
        wrapped(["Conv", "SelfAttentionBlock"], [3])
    e = info.value
    assert isinstance(e, ValueError) and isinstance(e, yolo_attn_autoload.YoloAttnNotLoadedError)
    assert str(e) == (
        "model YAML names SelfAttentionBlock, a yolo-attn layer, but yolo-attn auto-loading is disabled "
        "(YOLO_ATTN_AUTOLOAD=0): unset it or `import yolo_attn` before building the model (YAML row 1)."
    )
    for names, key in ((["Cnov"], "Cnov"), (["nested"], "SelfAttentionBlock")):  # other KeyErrors pass untouched
        with pytest.raises(KeyError) as info:
            wrapped(names, [3])
        assert type(info.value) is KeyError and info.value.args == (key,)


def test_hint_after_a_failed_registration_points_at_the_warning(fake_tasks, monkeypatch):
    monkeypatch.setattr(yolo_attn_autoload, "_failure", "RuntimeError: boom")
    yolo_attn_autoload.wrap_parse_model(fake_tasks)
    with pytest.raises(yolo_attn_autoload.YoloAttnNotLoadedError, match=r"failed to register with Ultralytics "
                       r"\(RuntimeError: boom\): see the YoloAttnAutoloadWarning above"):
        fake_tasks.parse_model(["TransformerEncoder"], [3])


DISABLED = r"""
    import inspect, json, sys
    import yolo_attn_autoload as hook

    report = {"startup": sorted(m for m in ("torch", "ultralytics", "yolo_attn") if m in sys.modules),
              "finders": [type(f).__name__ for f in sys.meta_path if type(f).__module__ == hook.__name__]}
    import ultralytics.nn
    import ultralytics.nn.tasks as tasks

    report["wrapped_is_real"] = inspect.getsourcefile(tasks.parse_model.__wrapped__) == tasks.__file__
    report["package_alias"] = ultralytics.nn.parse_model is tasks.parse_model
    try:
        tasks.DetectionModel(sys.argv[1], verbose=False)
    except Exception as e:
        report["error"] = [type(e).__name__, isinstance(e, KeyError), isinstance(e, ValueError), str(e)]
    report["plugin_imported"] = "yolo_attn" in sys.modules
    import yolo_attn  # the documented fix, after Ultralytics was imported

    model = tasks.DetectionModel(sys.argv[1], verbose=False)
    report["after_import"] = type(model.model[16]).__name__
    print(json.dumps(report))
"""


def test_disabled_autoload_explains_the_missing_layer():
    import json

    p = python(DISABLED, str(CONFIGS / "yolov8n-attn.yaml"), YOLO_ATTN_AUTOLOAD="0")
    assert p.returncode == 0, p.stdout + p.stderr
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["startup"] == [] and report["finders"] == ["HintFinder"]  # stdlib only until Ultralytics loads
    assert report["wrapped_is_real"] and report["package_alias"]
    assert report["error"] == [
        "YoloAttnNotLoadedError", True, True,
        "model YAML names SelfAttentionBlock, a yolo-attn layer, but yolo-attn auto-loading is disabled "
        "(YOLO_ATTN_AUTOLOAD=0): unset it or `import yolo_attn` before building the model (YAML row 16).",
    ]
    assert report["plugin_imported"] is False  # the hint itself never imports the plugin
    assert report["after_import"] == "SelfAttentionBlock"
