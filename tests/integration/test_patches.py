"""The patches yolo-attn applies to Ultralytics, through the real Ultralytics: safe loading allows the plugin's own
classes and nothing else; a checkpoint loaded where the plugin is missing names the package; FLOPs in the model
summary are exact for attention; Ultralytics' fuse() folds the blocks' norms."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import yolo_attn
from integration_helpers import CONFIGS, python, tiny_cfg
from yolo_attn import SelfAttentionBlock

from ultralytics.nn import tasks  # noqa: E402  after yolo_attn
from ultralytics.nn.tasks import DetectionModel, torch_safe_load  # noqa: E402

# Restricted loading (ULTRALYTICS_SAFE_LOAD, `tasks._SafeLoad`) came in a later 8.4 release; before it, 8.3.0 and
# 8.4.0 load every checkpoint unrestricted, and `safe_only=True` swaps unknown classes for stand-ins instead.
restricted_loading = pytest.mark.skipif(not hasattr(tasks, "_SafeLoad"),
                                        reason="this Ultralytics has no restricted loading (ULTRALYTICS_SAFE_LOAD)")


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


@restricted_loading  # its safe-load half needs it; older releases also word the missing requirement otherwise
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


@restricted_loading
def test_safe_load_allows_the_plugin_model(attn_ckpt):
    ckpt, _ = torch_safe_load(attn_ckpt, safe_only=True)
    assert any(isinstance(m, SelfAttentionBlock) for m in ckpt["model"].modules())


@pytest.mark.parametrize("extra", [Stowaway, ForeignLayer, CallsPluginFunction], ids=lambda c: c.__name__)
@restricted_loading
def test_safe_load_still_refuses_other_globals_after_registration(attn_ckpt, tmp_path, extra):
    ckpt = torch.load(attn_ckpt, weights_only=False)
    path = tmp_path / "stowaway.pt"
    torch.save({**ckpt, "extra": extra()}, path)
    with pytest.raises(TypeError, match="references types outside the supported Ultralytics checkpoint format") as info:
        torch_safe_load(path, safe_only=True)
    assert "Unsupported global" in str(info.value.__cause__)


@restricted_loading
def test_safe_load_allows_only_plugin_classes():
    from yolo_attn.integration import plugin_classes, safe_load_names

    registry = tasks._SafeLoad._registry
    ours = {k for k, v in registry.items() if k.startswith("yolo_attn")}
    assert ours == set(safe_load_names())  # each class under its module now and its 0.1.0 module
    assert {f"{c.__module__}.{c.__qualname__}" for c in plugin_classes()} < ours
    assert {"yolo_attn.block.SelfAttentionBlock", "yolo_attn.attention2d.Attention2d"} < ours
    assert all(registry[k].__module__.startswith("yolo_attn.") for k in ours)


# ---------------------------------------------------------------- FLOPs and fuse


def test_summary_counts_attention_params_and_flops():
    base = DetectionModel("yolov8n.yaml", verbose=False)
    attn = DetectionModel(str(CONFIGS / "yolov8n-attn-standard.yaml"), verbose=False)
    blocks = [m for m in attn.modules() if isinstance(m, SelfAttentionBlock)]
    added = sum(p.numel() for b in blocks for p in b.parameters())
    _, base_params, _, base_flops = base.info()
    _, params, _, flops = attn.info()
    assert params - base_params == added
    # Global attention at 640 px: q/k/v and output projections (8 C^2 N) plus QK^T and AV (4 N^2 C), per level.
    expected = sum(8 * c * c * n + 4 * n * n * c for c, n in ((64, 80 * 80), (128, 40 * 40), (256, 20 * 20))) / 1e9
    assert abs((flops - base_flops) - expected) / expected < 0.05


def test_capped_config_flops_are_measured_at_full_size():
    capped = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
    full = DetectionModel(str(CONFIGS / "yolov8n-attn-standard.yaml"), verbose=False)
    base = DetectionModel("yolov8n.yaml", verbose=False)
    f_capped, f_full, f_base = (m.info()[3] for m in (capped, full, base))
    # At 640 px the cap of 400 keys binds at P3 (6400 pixels, keys pooled 4x4) and P4 (1600, pooled 2x2): per level,
    # QK^T and AV lose 4 N (N - Nk) C FLOPs and the key/value projection 4 (N - Nk) C^2.
    saved = sum(4 * n * (n - 400) * c + 4 * (n - 400) * c * c for n, c in ((6400, 64), (1600, 128))) / 1e9
    expected = (f_full - f_base) - saved
    assert abs((f_capped - f_base) - expected) / expected < 0.01


def test_ultralytics_fuse_folds_attention_norms():
    # Ultralytics fuses before predict, val of a checkpoint and export; its fuse() must fold our blocks' norms too.
    torch.manual_seed(0)
    model = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
    for b in model.modules():
        if isinstance(b, SelfAttentionBlock):
            torch.nn.init.normal_(b.attn.proj.weight, std=0.1)
            with torch.no_grad():
                b.norm.running_mean.uniform_(-1, 1)
                b.norm.running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        before = model(x)[0]
        model.fuse(verbose=False)
        after = model(x)[0]
    blocks = [b for b in model.modules() if isinstance(b, SelfAttentionBlock)]
    assert len(blocks) == 3 and all(b.norm is None for b in blocks) and model.is_fused()
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-3)
