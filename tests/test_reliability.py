"""Reliability (issue 10): bad arguments and YAML rows, numerics, determinism, loading without the plugin, safe load.

CPU only and bounded: the fuzzers stop at `max_examples`, subprocesses import Ultralytics once each.
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yolo_attn
import yolo_attn_autoload
from yolo_attn import SelfAttentionBlock
from yolo_attn.block import ATTENTION_TYPES
from yolo_attn.registry import layers, yaml_args
from yolo_attn.transformer import ACTIVATIONS

from ultralytics.nn.tasks import DetectionModel, torch_safe_load, yaml_model_load  # noqa: E402  after yolo_attn

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
NAMES = sorted(layers())


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is as fast, and steadier on a shared machine (no spinning worker threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_cfg(name: str, args: list, width: int = 32, repeats: int = 1) -> dict:
    """A three-conv detector whose row 3 is `[-1, repeats, name, args]` (8x downsampled: 32x32 at the stride probe)."""
    backbone = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [width, 3, 2]]]
    return {"nc": 2, "backbone": [*backbone, [-1, repeats, name, args]], "head": [[[3], 1, "Detect", ["nc"]]]}


def python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (which runs the start-up hook), offline and never pip-installing."""
    full = {k: v for k, v in os.environ.items() if k not in {"YOLO_ATTN_AUTOLOAD", "ULTRALYTICS_SAFE_LOAD"}}
    full.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false", **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


# ---------------------------------------------------------------- fuzzing every registered layer's arguments

SIZE_CAPS = {"dim_feedforward": 256, "num_layers": 3, "c2": 64}  # they allocate: huge values would only test RAM
CHOICES = [*ATTENTION_TYPES, *ACTIVATIONS]
JUNK_STRINGS = ["", "gobal", "STANDARD", "nc", "32", "None", "tanh"]
GOOD_C1 = [1, 2, 3, 4, 8, 12, 16, 24, 32, 64]
BAD_C1 = [0, -4, True, 4.0, "64", None, [64]]


def plausible(arg: str, default: object) -> st.SearchStrategy:
    """Values of the argument's own type and range (which may still be invalid together, e.g. heads vs channels)."""
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, str):
        return st.sampled_from(CHOICES)
    if isinstance(default, float):
        return st.floats(0.0, 0.9) if default < 1 else st.floats(1.5, 1e6)  # dropout rates; temperature
    ints = st.integers(1, SIZE_CAPS.get(arg, 64))
    return ints if default is not None else st.none() | ints


def implausible(arg: str) -> st.SearchStrategy:
    ints = st.integers(-3, 0) | st.sampled_from([-(2**63), -(2**31)])
    if arg not in SIZE_CAPS:
        ints = ints | st.sampled_from([2**31 - 1, 2**31, 2**63, 10**30])
    return st.one_of(
        ints,
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.5, 1.0, 32.0, -0.0]),
        st.none(),
        st.booleans(),
        st.sampled_from(CHOICES + JUNK_STRINGS),
        st.lists(st.integers(0, 64), max_size=2),
        st.just(["standard"]),
    )


@st.composite
def layer_case(draw, name: str):
    """(c1, args, input shape, training): args as a YAML row gives them, positionally, sometimes one too many."""
    spec = yaml_args(layers()[name])
    c1 = draw(st.sampled_from(BAD_C1)) if draw(st.integers(0, 7)) == 0 else draw(st.sampled_from(GOOD_C1))
    args = []
    for j in range(draw(st.integers(0, len(spec) + 1))):
        if j == len(spec):
            args.append(draw(st.integers(0, 64)))  # one more than the layer takes
            continue
        arg, default = spec[j]
        args.append(draw(st.one_of(st.just(default), plausible(arg, default), implausible(arg))))
    c = c1 if draw(st.integers(0, 3)) else draw(st.sampled_from([4, 8, 16]))  # sometimes the wrong channels
    shape = (draw(st.integers(1, 2)), c, draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return c1, args, shape, draw(st.booleans())


def assert_named(e: BaseException, *prefixes: str) -> None:
    assert isinstance(e, (TypeError, ValueError)), f"{type(e).__name__}: {e}"
    assert str(e).startswith(prefixes), f"message does not start with {prefixes}: {type(e).__name__}: {e}"


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_arguments_build_and_run_or_raise_a_named_error(name, data):
    """Anything else than a working layer or a TypeError/ValueError naming it (IndexError, RuntimeError, ...) fails."""
    c1, args, shape, train = data.draw(layer_case(name))
    try:
        layer = layers()[name](c1, *args)
    except (TypeError, ValueError) as e:
        assert_named(e, name, "yolo-attn")
        return
    assert isinstance(c1, int) and not isinstance(c1, bool) and c1 >= 1, f"{name} accepted c1={c1!r}"
    layer.train(train)
    x = torch.randn(shape, requires_grad=True)
    B, C, H, W = shape
    try:
        y = layer(x)
    except ValueError as e:
        assert_named(e, name)
        assert C != c1 or (train and B * H * W == 1), f"{name}{tuple([c1, *args])} refused a valid input {shape}: {e}"
        return
    assert C == c1, f"{name} built for {c1} channels ran on {C}"
    assert y.shape == (B, getattr(layer, "c2", None) or C, H, W)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in layer.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), pname


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
        ([-1, 1, "SelfAttentionBlock", ["standard", 48]], ValueError, r"not divisible by head_dim 48; use head_dim in \[8, 16, 32, 64\]"),
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
        ([-1, 1, "SelfAttentionBlock", ["standard", 32, 1, 1, True, 0, 0.0, 7]], TypeError,
         r"takes at most 7 YAML args after its input channels \(type='standard', head_dim=32"),
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


# ---------------------------------------------------------------- numerics

TOL = {torch.float32: 3e-4, torch.float16: 4e-3, torch.bfloat16: 2e-2}  # relative, well-conditioned inputs (as xformers)
LOW = [torch.float16, torch.bfloat16]
# fp16 matmuls are slow on CPUs without native fp16: a narrower feed-forward than the 2048 default, two layers deep.
BUILD_ARGS = {"TransformerEncoderLayer": [8, 128], "TransformerEncoder": [8, 2, 128]}


def build(name: str, seed: int = 0, fused: bool = True) -> nn.Module:
    """Layer at 64 channels; zero-initialised tensors (the block's output projection) get small weights, so the
    attention path shows in the output instead of an exact identity."""
    torch.manual_seed(seed)
    layer = layers()[name](64, *BUILD_ARGS.get(name, []))
    with torch.no_grad():
        for p in layer.parameters():
            if not p.any():
                nn.init.normal_(p, std=0.05)
    for m in layer.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = fused
    return layer


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("dtype", [torch.float32, *LOW], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_matches_float64_within_dtype_tolerance(name, dtype):
    layer = build(name).eval()
    x = torch.randn(2, 64, 6, 7)
    with torch.no_grad():
        ref = copy.deepcopy(layer).double()(x.double())
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            out = layer(x)
    assert rel_err(out, ref) < TOL[dtype]


INPUTS = {
    "randn_x1e3": lambda shape: torch.randn(shape) * 1e3,
    "all_equal": lambda shape: torch.ones(shape),
    "all_equal_1e3": lambda shape: torch.full(shape, 1e3),
}


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "manual"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("inputs", sorted(INPUTS))
@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_autocast_stays_finite(name, dtype, inputs, train, fused):
    """fp16/bf16 autocast, forward and backward, on large and on constant activations (BatchNorm variance 0).

    The loss has bounded gradients, as real losses do: large upstream gradients on top of large activations
    overflow fp16 by arithmetic, which is what a GradScaler is for.
    """
    layer = build(name, fused=fused).train(train)
    x = INPUTS[inputs]((2, 64, 6, 7)).requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        y = layer(x)
    assert torch.isfinite(y).all()
    (y.float() * torch.randn(y.shape)).mean().backward()
    assert torch.isfinite(x.grad).all()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_layer_outputs_and_gradients(name):
    def once():
        layer = build(name, seed=7).train()  # training: dropout draws from the seeded generator too
        torch.manual_seed(8)
        x = torch.randn(2, 64, 5, 9, requires_grad=True)
        y = layer(x)
        y.square().mean().backward()
        return y.detach(), x.grad, [p.grad for p in layer.parameters()]

    (y1, gx1, gp1), (y2, gx2, gp2) = once(), once()
    assert torch.equal(y1, y2) and torch.equal(gx1, gx2)
    assert all(torch.equal(a, b) for a, b in zip(gp1, gp2))


def test_same_seed_same_detection_model_forward():
    def once():
        torch.manual_seed(3)
        model = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, SelfAttentionBlock):
                    nn.init.normal_(m.attn.proj.weight, std=0.05)  # let the attention change the outputs
            torch.manual_seed(4)
            return model.state_dict(), model.eval()(torch.rand(1, 3, 64, 64))[0]

    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # as users run it, not single-threaded as the rest of this module
    try:
        (sd1, y1), (sd2, y2) = once(), once()
    finally:
        torch.set_num_threads(threads)
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert torch.equal(y1, y2)


# ---------------------------------------------------------------- loading where the plugin is missing

MISSING_PLUGIN = r"""
    import importlib.metadata as metadata, sys

    class PluginMissing:
        '''Neither yolo_attn nor its start-up hook can be imported, as when yolo-attn is not installed.'''

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("yolo_attn", "yolo_attn_autoload"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path[:] = [PluginMissing()] + [f for f in sys.meta_path if type(f).__module__ != "yolo_attn_autoload"]
    sys.modules.pop("yolo_attn_autoload", None)
    version = metadata.version

    def uninstalled(name):  # nor its distribution metadata (the editable install would answer otherwise)
        if name.replace("_", "-").lower() == "yolo-attn":
            raise metadata.PackageNotFoundError(name)
        return version(name)

    metadata.version = uninstalled

    from ultralytics import YOLO
    from ultralytics.nn.tasks import torch_safe_load

    for label, load in (("default", lambda: YOLO(sys.argv[1])), ("safe", lambda: torch_safe_load(sys.argv[1], True))):
        try:
            load()
        except Exception as e:
            print(f"{label} -> {type(e).__name__}: {e} | caused by: {e.__cause__!r}", flush=True)
        else:
            print(f"{label} -> loaded", flush=True)
    print("imported:", sorted(m for m in sys.modules if m.startswith("yolo_attn")))
"""


@pytest.fixture(scope="module")
def attn_ckpt(tmp_path_factory) -> Path:
    """A checkpoint of a (tiny) detector with a SelfAttentionBlock, saved the way Ultralytics saves models."""
    torch.manual_seed(0)
    model = DetectionModel(tiny_cfg("SelfAttentionBlock", ["efficient"]), verbose=False)
    path = tmp_path_factory.mktemp("ckpt") / "attn.pt"
    torch.save({"model": model, "train_args": {}}, path)
    return path


def test_checkpoint_without_the_plugin_names_the_package_to_install(attn_ckpt):
    p = python(MISSING_PLUGIN, str(attn_ckpt), YOLO_ATTN_AUTOLOAD="0")
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    # Default load: Ultralytics names the missing module as a requirement and, with auto-install off, installs nothing.
    assert f"{attn_ckpt} appears to require 'yolo_attn'" in out, out
    assert "requirement ['yolo_attn'] not found, AutoUpdate disabled by YOLO_AUTOINSTALL=False" in out, out
    assert "default -> ModuleNotFoundError: No module named 'yolo_attn'" in out, out
    # Safe load: no install attempt at all; the refused global names the plugin's class.
    assert "safe -> TypeError:" in out and "Unsupported global: GLOBAL yolo_attn.layers.block.SelfAttentionBlock" in out, out
    assert "imported: []" in out, out


def pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_auto_install_name_is_this_distribution():
    """Ultralytics auto-installs `e.name` of the ModuleNotFoundError, the top-level import name `yolo_attn`; the
    index normalises it (PEP 503) to this project's distribution name, so pip would fetch yolo-attn."""
    from ultralytics.utils.checks import check_requirements

    dist = importlib.metadata.distribution("yolo-attn")
    assert pep503("yolo_attn") == pep503(dist.metadata["Name"]) == "yolo-attn"
    assert set(importlib.metadata.packages_distributions()["yolo_attn"]) == {dist.metadata["Name"]}  # listed per file
    assert yolo_attn.__name__ == "yolo_attn" and SelfAttentionBlock.__module__.split(".")[0] == "yolo_attn"
    assert check_requirements("yolo_attn", install=False)  # the installed yolo-attn satisfies it: nothing to install


# ---------------------------------------------------------------- auto-loading disabled, YAML needs the plugin


def test_the_one_layer_list_resolves_and_everything_derives_from_it():
    # yolo_attn_autoload.LAYERS is the only list: each entry names a real layer class where it says, the registry
    # holds exactly its YAML names, and the public API exports every class.
    import torch.nn as nn

    for name, (module, _) in yolo_attn_autoload.LAYERS.items():
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == module, name
        assert getattr(yolo_attn, name) is cls and name in yolo_attn.__all__
    assert set(layers()) == yolo_attn_autoload.LAYER_NAMES


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


# ---------------------------------------------------------------- safe loading: only the plugin's own classes


class Stowaway:
    """A class no allow-list knows."""


class ForeignLayer(nn.Module):
    """An nn.Module from outside the plugin and Ultralytics."""


class CallsPluginFunction:
    """Unpickles by calling a plugin *function*: not a class, so never on the allow-list."""

    def __reduce__(self):
        from yolo_attn.integration import packaged_config

        return packaged_config, ("yolov8-attn.yaml",)


def test_safe_load_allows_the_plugin_model(attn_ckpt):
    ckpt, _ = torch_safe_load(attn_ckpt, safe_only=True)
    assert any(isinstance(m, SelfAttentionBlock) for m in ckpt["model"].modules())


@pytest.mark.parametrize("extra", [Stowaway, ForeignLayer, CallsPluginFunction], ids=lambda c: c.__name__)
def test_safe_load_still_refuses_other_globals_after_registration(attn_ckpt, tmp_path, extra):
    ckpt = torch.load(attn_ckpt, weights_only=False)
    path = tmp_path / "stowaway.pt"
    torch.save({**ckpt, "extra": extra()}, path)
    with pytest.raises(TypeError, match="references types outside the supported Ultralytics checkpoint format") as info:
        torch_safe_load(path, safe_only=True)
    assert "Unsupported global" in str(info.value.__cause__)
