"""The patches `register()` applies to Ultralytics, each once: safe loading, config search, FLOPs, fusing.

1. Safe loading: under `ULTRALYTICS_SAFE_LOAD=1` the plugin's own layer classes join the allow-list (under their
   module now and their 0.1.0 module, which older checkpoints name), nothing else.
2. Configs by name: `check_file` falls back to the configs shipped in this package, after Ultralytics' own search
   and the user's files have had their turn.
3. Exact FLOPs: attention models are profiled at full size, each Attention2d counted by `Attention2d.macs`.
4. Inference fusing: `BaseModel.fuse` (predict, val, export) also folds each attention block's BatchNorm.
5. The classification set by name: `data=attn-shapes-cls` is built where Ultralytics would download it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from yolo_attn_autoload import LAYERS, layer_paths, mark_patch

from . import registry


def plugin_classes() -> list[type[nn.Module]]:
    """Every nn.Module class the plugin defines: what a checkpoint of an attention model can reference."""
    return registry.plugin_classes()


def safe_load_names() -> dict[str, type[nn.Module]]:
    """Dotted name -> class for the safe-load allow-list: each layer class under its module now and its 0.1.0 one."""
    return {path: registry.layer_class(name) for name in LAYERS for path in layer_paths(name)}


def _allow_safe_load(tasks) -> None:
    """Add exactly the plugin's own classes to Ultralytics' safe-load allow-list (torch.nn ones are already on it)."""
    safe = getattr(tasks, "_SafeLoad", None)
    if safe is None or not getattr(safe, "SUPPORTED", False):
        return
    with safe._lock:
        if safe._registry is None:
            safe._registry = safe._build()
        safe._registry.update(safe_load_names())


def _install_config_search() -> None:
    """Let `check_file` find this package's configs by bare name, after everything Ultralytics would find."""
    from ultralytics.utils import checks

    original = checks.check_file
    if getattr(original, "_yolo_attn", False):
        return

    def check_file(file, suffix="", download=True, download_dir=".", hard=True):
        try:
            found = original(file, suffix, download, download_dir, hard)
        except FileNotFoundError:
            if not hard or not (path := packaged_config(file)):
                raise
            return path
        return found or packaged_config(file) or found

    mark_patch(check_file, original)
    _rebind("check_file", original, check_file)


def _rebind(name: str, original: Callable, patched: Callable) -> None:
    """Point every loaded Ultralytics module holding `original` as `name` at `patched`: the defining module and those
    that did `from ... import name`."""
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("ultralytics") and vars(mod).get(name) is original:
            setattr(mod, name, patched)


def packaged_config(file) -> str | None:
    """Return the path of a config shipped with yolo-attn named exactly `file` (a bare file name), else None."""
    name = str(file).strip()
    if not name or Path(name).name != name:
        return None
    from . import CONFIG_DIR  # read at call time: the package attribute is the one place to point elsewhere

    path = Path(CONFIG_DIR) / name
    return str(path) if path.is_file() else None


def _count_attention2d(m, x, y) -> None:
    """THOP rule for Attention2d: its multiply-adds for the input it was called with."""
    m.total_ops += m.macs(tuple(x[0].shape))


def _unwrap(torch_utils, model: nn.Module) -> nn.Module:
    """The model inside DDP/EMA wrappers: `unwrap_model` in newer Ultralytics, `de_parallel` in older 8.3 releases."""
    unwrap = getattr(torch_utils, "unwrap_model", None) or torch_utils.de_parallel
    return unwrap(model)


def _install_exact_flops() -> None:
    """Make `get_flops` count attention models exactly, at the real image size.

    THOP sees products only through module rules and functional F.linear / bmm calls; the layer's products also run
    as convolutions and `baddbmm` (`layers.layouts`, chosen by `layers.switches.route`), so each Attention2d
    is counted by its own rule, `Attention2d.macs`. And Ultralytics extrapolates from small proxy images; attention is
    quadratic in pixels and a key/value cap binds only on large maps, so these models are profiled at full size.
    """
    from ultralytics.utils import torch_utils

    from ..layers.attention2d import Attention2d

    original = torch_utils.get_flops
    if getattr(original, "_yolo_attn", False):
        return

    def get_flops(model, imgsz=640):
        if not any(isinstance(m, Attention2d) for m in model.modules()):
            return original(model, imgsz)
        try:
            import thop

            model = _unwrap(torch_utils, model)
            p = next(model.parameters())
            size = imgsz if isinstance(imgsz, (list, tuple)) else (imgsz, imgsz)
            im = torch.empty((1, p.shape[1], *size), device=p.device, dtype=p.dtype)
            rules = {Attention2d: _count_attention2d}
            return thop.profile(model, inputs=[im], custom_ops=rules, verbose=False)[0] / 1e9 * 2
        except Exception:  # same contract as Ultralytics: a summary never fails on FLOPs
            return 0.0

    mark_patch(get_flops, original)
    torch_utils.get_flops = get_flops


def _install_fuse(tasks) -> None:
    """Make `BaseModel.fuse` fold each SelfAttentionBlock's BatchNorm too, as it folds each Conv's.

    Ultralytics fuses a model before predicting, validating a checkpoint and exporting; it knows only its own layer
    types, so without this an attention block would keep a separate BatchNorm pass at inference.
    """
    from ..layers.block import SelfAttentionBlock

    original = tasks.BaseModel.fuse
    if getattr(original, "_yolo_attn", False):
        return

    def fuse(self, *args, **kwargs):
        for m in self.modules():
            if isinstance(m, SelfAttentionBlock):
                m.fuse()
        return original(self, *args, **kwargs)

    mark_patch(fuse, original)
    tasks.BaseModel.fuse = fuse


CLS_DATASET = "attn-shapes-cls"


def _install_cls_dataset() -> None:
    """Make `data=attn-shapes-cls` build the class folders (`datasets.classify`) instead of fetching a zip.

    A classification set has no data YAML, so no `download:` snippet: `check_cls_dataset` turns a bare name that is
    not a folder into `DATASETS_DIR/name` and, if missing, calls `download(ASSETS_URL + "/name.zip", dir=DATASETS_DIR)`.
    This answers that one call (the file name `attn-shapes-cls.zip`) by building `dir/attn-shapes-cls`; every other
    download passes through. `download` is patched in `ultralytics.utils.downloads`, complete before registration
    (`import ultralytics` loads it), not `check_cls_dataset`: `ultralytics.data.utils` imports `nn.tasks` at its top,
    so registration often runs while that module is half-executed; it takes `download` from `downloads` afterwards.
    """
    from ultralytics.utils import LOGGER, downloads

    original = downloads.download
    if getattr(original, "_yolo_attn", False):
        return

    def download(url, dir=None, *args, **kwargs):
        if not isinstance(url, (str, Path)) or str(url).rsplit("/", 1)[-1] != f"{CLS_DATASET}.zip":
            return original(url, dir, *args, **kwargs)
        from ..datasets.classify import build_shapes_cls

        root = Path(dir or Path.cwd()) / CLS_DATASET
        LOGGER.info(f"yolo-attn: generating dataset {CLS_DATASET} (class folders) at {root}; nothing is downloaded")
        build_shapes_cls(root)
        return None

    mark_patch(download, original)
    _rebind("download", original, download)
