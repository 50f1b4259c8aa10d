"""All coupling with Ultralytics lives here: the layers themselves never import it.

`register()` teaches a running Ultralytics, once per process:
1. YAML names: each registered layer is bound in `ultralytics.nn.tasks`' globals, where `parse_model` looks names
   up. What is bound is a small factory class: `parse_model` passes an unknown layer its YAML args unchanged, so
   the factory reads the input channels of the row from `parse_model`'s own frame and builds the plain layer
   `Layer(c1, *args)`. Models (and so checkpoints) hold only the plain `yolo_attn` classes. Errors name the row.
2. Safe loading: under `ULTRALYTICS_SAFE_LOAD=1` the plugin's own layer classes join the allow-list, nothing else.
3. Configs by name: `check_file` falls back to the configs shipped in this package, after Ultralytics' own search
   and the user's files have had their turn.
4. Exact FLOPs: attention models are profiled at full size, each Attention2d counted by `Attention2d.macs`.
5. Warm start: `BaseModel.load` maps a plain checkpoint's layers around the inserted attention rows.
6. Inference fusing: `BaseModel.fuse` (predict, val, export) also folds each attention block's BatchNorm.
7. A warning, once, when the Ultralytics version is outside the tested range.
"""

from __future__ import annotations

import inspect
import re
import sys
import threading
from pathlib import Path

import torch
import torch.nn as nn

from . import registry

TESTED_ULTRALYTICS = ((8, 4, 190), (8, 5, 0))  # [low, high)
CONFIG_DIR = Path(__file__).parent / "configs"

_lock = threading.Lock()
_registered = False
_parse_model_code = None  # code object of the real parse_model, to recognise its frame


def _row_context() -> tuple[int, object, list] | None:
    """Return (row index, from, channels) of the `parse_model` frame building a layer now, or None outside it."""
    frame = sys._getframe(2)  # caller of the factory's __new__ (parse_model, or its generator for repeats)
    for _ in range(4):
        if frame is None:
            return None
        if frame.f_code is _parse_model_code:
            loc = frame.f_locals
            return loc["i"], loc["f"], loc["ch"]
        frame = frame.f_back
    return None


class _YamlFactory(nn.Module):
    """Base of the names bound in `ultralytics.nn.tasks`: `Name(*yaml_args)` inside parse_model -> `Layer(c1, ...)`."""

    layer: type[nn.Module]

    def __new__(cls, *args):
        ctx = _row_context()
        if ctx is None:  # built by hand, outside a YAML: arguments are the layer's own
            return cls.layer(*args)
        i, f, ch = ctx
        name = cls.layer.__name__
        where = f"model YAML row {i} [{f}, ..., {name}, {list(args)}]"
        c1 = ch[f]
        try:
            bound = inspect.signature(cls.layer).bind(c1, *args)
        except TypeError:
            names = ", ".join(f"{n}={d!r}" for n, d in registry.yaml_args(cls.layer))
            raise TypeError(
                f"yolo-attn: {where}: {name} takes at most {len(registry.yaml_args(cls.layer))} YAML args "
                f"after its input channels ({names}), got {len(args)}."
            ) from None
        if bound.arguments.get("c2") not in (None, c1):  # checked first: a huge c2 would be allocated before failing
            raise ValueError(f"yolo-attn: {where}: a YAML row's output channels equal its input ({c1}); drop c2.")
        try:
            return cls.layer(c1, *args)
        except (TypeError, ValueError) as e:
            raise type(e)(f"yolo-attn: {where} with {c1} input channels: {e}") from None


def _factory(layer: type[nn.Module]) -> type[_YamlFactory]:
    # Module "yolo_attn" so the layer table reads "yolo_attn.SelfAttentionBlock"; the factory itself is never
    # pickled, since __new__ returns the plain layer.
    return type(layer.__name__, (_YamlFactory,), {"layer": layer, "__module__": "yolo_attn", "__doc__": layer.__doc__})


def _bind_names(tasks) -> None:
    global _parse_model_code
    _parse_model_code = inspect.unwrap(tasks.parse_model).__code__  # through any wrapper (ours, the off-hint)
    for name, layer in registry.layers().items():
        current = vars(tasks).get(name)
        if current is not None and getattr(current, "layer", None) is not layer:
            raise RuntimeError(
                f"yolo-attn: ultralytics.nn.tasks already defines {name} ({current!r}); not shadowing it. "
                "Rename the conflicting layer or set YOLO_ATTN_AUTOLOAD=0."
            )
        if current is None:
            setattr(tasks, name, _factory(layer))


def _explain_row_errors(tasks) -> None:
    """Make `parse_model` name the YAML row when it fails on one of our rows before our factory runs.

    Ultralytics computes a row's channels (`ch[f]`) before building the layer, so a row reading several layers
    (`[[-1, 12], 1, SelfAttentionBlock, ...]`) fails inside parse_model with a bare "list indices" TypeError.
    """
    original = tasks.parse_model
    if getattr(original, "_yolo_attn", False):
        return

    def parse_model(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except (TypeError, IndexError) as e:
            if str(e).startswith("yolo-attn:"):
                raise
            tb = e.__traceback__
            while tb is not None and tb.tb_frame.f_code is not _parse_model_code:
                tb = tb.tb_next
            loc = tb.tb_frame.f_locals if tb is not None else {}
            layer = getattr(loc.get("m"), "layer", None)
            if not (isinstance(loc.get("m"), type) and issubclass(loc["m"], _YamlFactory)):
                raise
            f, name = loc.get("f"), layer.__name__
            raise ValueError(
                f"yolo-attn: model YAML row {loc.get('i')} [{f}, ..., {name}, {loc.get('args')}]: {name} reads one "
                f"layer, so 'from' must be a single index, got {f!r} ({type(e).__name__}: {e})."
            ) from None

    parse_model._yolo_attn = True
    parse_model.__wrapped__ = original
    parse_model.__doc__ = original.__doc__
    tasks.parse_model = parse_model


def plugin_classes() -> list[type[nn.Module]]:
    """Every nn.Module class the plugin defines: what a checkpoint of an attention model can reference."""
    from . import attention, attention2d, block, pos_embed, transformer

    return [
        obj
        for mod in (attention, attention2d, block, pos_embed, transformer)
        for obj in vars(mod).values()
        if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == mod.__name__
    ]


def _allow_safe_load(tasks) -> None:
    """Add exactly the plugin's own classes to Ultralytics' safe-load allow-list (torch.nn ones are already on it)."""
    safe = getattr(tasks, "_SafeLoad", None)
    if safe is None or not getattr(safe, "SUPPORTED", False):
        return
    with safe._lock:
        if safe._registry is None:
            safe._registry = safe._build()
        for cls in plugin_classes():
            safe._registry[f"{cls.__module__}.{cls.__qualname__}"] = cls


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

    check_file._yolo_attn = True
    check_file.__wrapped__ = original
    check_file.__doc__ = original.__doc__
    for mod in list(sys.modules.values()):  # modules that did `from ultralytics.utils.checks import check_file`
        if getattr(mod, "__name__", "").startswith("ultralytics") and vars(mod).get("check_file") is original:
            mod.check_file = check_file


def _count_attention2d(m, x, y) -> None:
    """THOP rule for Attention2d: its multiply-adds for the input it was called with."""
    m.total_ops += m.macs(tuple(x[0].shape))


def _install_exact_flops() -> None:
    """Make `get_flops` count attention models exactly, at the real image size.

    THOP sees products only through module rules and functional F.linear / bmm calls; the layer's products also run
    as convolutions and `baddbmm` (`attention2d.project`, `attention2d.reads_channels_first`), so each Attention2d
    is counted by its own rule, `Attention2d.macs`. And Ultralytics extrapolates from small proxy images; attention is
    quadratic in pixels and a key/value cap binds only on large maps, so these models are profiled at full size.
    """
    from ultralytics.utils import torch_utils

    from .attention2d import Attention2d

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

    get_flops._yolo_attn = True
    get_flops.__wrapped__ = original
    torch_utils.get_flops = get_flops


def _unwrap(torch_utils, model: nn.Module) -> nn.Module:
    """The model inside DDP/EMA wrappers: `unwrap_model` in newer Ultralytics, `de_parallel` in older 8.3 releases."""
    unwrap = getattr(torch_utils, "unwrap_model", None) or torch_utils.de_parallel
    return unwrap(model)


def _install_warm_start(tasks) -> None:
    """Make `BaseModel.load` transfer a plain checkpoint into a model with yolo_attn rows by layer order.

    Name matching (`model.<index>...`) breaks once rows are inserted. If `transfer.map_layers` verifies that the
    source is the target minus its yolo_attn rows, the source rows are presented to the real `load` at their target
    indices, so Ultralytics' own logic (class-branch re-fit, class remap by name, first-conv channels) still applies.
    Models without yolo_attn rows are untouched; any mismatch falls back to the real `load` with a warning.
    """
    import copy

    from ultralytics.utils import LOGGER

    from . import transfer

    original = tasks.BaseModel.load
    if getattr(original, "_yolo_attn", False):
        return

    def load(self, weights, verbose=True):
        rows = getattr(self, "model", None)
        if not isinstance(rows, nn.Sequential) or not any(transfer.is_inserted(m) for m in rows):
            return original(self, weights, verbose)
        src = (weights.get("ema") or weights.get("model")) if isinstance(weights, dict) else weights
        src_rows = getattr(src, "model", None)
        try:
            if not isinstance(src_rows, nn.Sequential) or not len(src_rows):
                raise transfer.Mismatch(f"the source ({type(src).__name__}) has no Ultralytics layer list")
            free = {}  # differences the real load adapts itself
            if isinstance(rows[-1], tasks.Detect) and rows[-1].nc != getattr(src_rows[-1], "nc", None):
                free[len(rows) - 1] = ("cv3.", "one2one_cv3.")  # class branches: re-fit to the new class count
            w, sw = (getattr(getattr(m, "conv", None), "weight", None) for m in (rows[0], src_rows[0]))
            if w is not None and sw is not None and w.shape[1] != sw.shape[1]:
                free[0] = ("conv.weight",)  # first conv: other input channels, filled from the source filters
            plan = transfer.map_layers(transfer.describe(src_rows), transfer.describe(rows), free)
        except transfer.Mismatch as e:
            if verbose:
                LOGGER.warning(
                    f"yolo-attn: pretrained weights are not this model minus its yolo_attn rows ({e}); falling back "
                    "to Ultralytics' transfer by layer index and shape, so layers after the first yolo_attn row "
                    "may stay at initialisation."
                )
            return original(self, weights, verbose)
        if plan.identity:
            return original(self, weights, verbose)
        proxy = copy.copy(src)  # the source, its rows moved to the target's indices (tensors shared, not copied)
        proxy._modules = {**src._modules, "model": transfer.reorder(src_rows, plan)}
        result = original(self, proxy, verbose)
        notes = {i: "input channels re-fit by Ultralytics" for i in free if i == 0}
        if len(rows) - 1 in free:
            notes[len(rows) - 1] = f"nc {getattr(src_rows[-1], 'nc', '?')} -> {rows[-1].nc}"
        complete, message = transfer.report(plan, src_rows, rows, src.state_dict(), self.state_dict(), notes)
        names = getattr(src, "names", None)
        if complete and isinstance(names, dict) and not hasattr(self, "set_classes"):
            if getattr(self, "names", None) == {i: str(i) for i in range(len(names))}:  # YAML placeholders
                self.names = dict(names)  # as the real load does when every tensor transfers
        if verbose:
            LOGGER.info(f"yolo-attn: {message}")
        return result

    load._yolo_attn = True
    load.__wrapped__ = original
    load.__doc__ = original.__doc__
    tasks.BaseModel.load = load


def _install_fuse(tasks) -> None:
    """Make `BaseModel.fuse` fold each SelfAttentionBlock's BatchNorm too, as it folds each Conv's.

    Ultralytics fuses a model before predicting, validating a checkpoint and exporting; it knows only its own layer
    types, so without this an attention block would keep a separate BatchNorm pass at inference.
    """
    from .block import SelfAttentionBlock

    original = tasks.BaseModel.fuse
    if getattr(original, "_yolo_attn", False):
        return

    def fuse(self, *args, **kwargs):
        for m in self.modules():
            if isinstance(m, SelfAttentionBlock):
                m.fuse()
        return original(self, *args, **kwargs)

    fuse._yolo_attn = True
    fuse.__wrapped__ = original
    fuse.__doc__ = original.__doc__
    tasks.BaseModel.fuse = fuse


def packaged_config(file) -> str | None:
    """Return the path of a config shipped with yolo-attn named exactly `file` (a bare file name), else None."""
    name = str(file).strip()
    if not name or Path(name).name != name:
        return None
    path = CONFIG_DIR / name
    return str(path) if path.is_file() else None


def _release(version: str) -> tuple[int, ...]:
    """Leading numeric release parts: '8.4.190.post1' -> (8, 4, 190), '8.5.0rc1' -> (8, 5, 0)."""
    parts = []
    for p in version.split("."):
        m = re.match(r"\d+", p)
        if not m:
            break
        parts.append(int(m.group()))
        if m.group() != p:
            break
    return tuple(parts)


def tested_range() -> str:
    """The tested Ultralytics versions as a pip specifier, e.g. '>=8.4.190,<8.5.0'."""
    low, high = TESTED_ULTRALYTICS
    return f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"


def in_tested_range(version: str) -> bool:
    """Whether an Ultralytics version string lies in the tested range (a pre-release of the upper bound does not)."""
    low, high = TESTED_ULTRALYTICS
    return low <= _release(version) < high


def _check_version() -> None:
    import ultralytics
    from ultralytics.utils import LOGGER

    if not in_tested_range(ultralytics.__version__):
        LOGGER.warning(
            f"yolo-attn {_plugin_version()} is tested with ultralytics{tested_range()}; "
            f"found {ultralytics.__version__}. Layers may fail to build."
        )


def _plugin_version() -> str:
    from . import __version__

    return __version__


def register() -> None:
    """Register the yolo-attn layers with Ultralytics; safe to call many times and from many threads."""
    global _registered
    if _registered:
        return
    # Imported outside the lock: a first import of it runs the auto-loader, which calls register() itself.
    import ultralytics.nn.tasks as tasks

    with _lock:
        if _registered:
            return
        _bind_names(tasks)
        _explain_row_errors(tasks)
        _allow_safe_load(tasks)
        _install_config_search()
        _install_exact_flops()
        _install_warm_start(tasks)
        _install_fuse(tasks)
        _check_version()
        _registered = True
