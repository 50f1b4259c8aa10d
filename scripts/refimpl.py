"""Run a model with the Attention2d of another git revision: before/after timing in one process, same weights.

`benchmark.py configs/yolov8n-attn.yaml@66f4337` and `block_costs.py --ref 66f4337` build the model as usual, then
give every Attention2d the methods of `yolo_attn/attention2d.py` as it was at that revision (read with `git show`;
REV may also be a path to a saved copy of that file, ending in .py).
The other modules (position table, block, ...) stay the working tree's, and the revision's Attention2d must keep
today's attributes (c1, dim, num_heads, qkv, proj, pos, ...), as every revision since the key/value cap does.
A revision from before BatchNorm folding keeps its blocks' norms when the model is fused, as it did then.
"""

from __future__ import annotations

import functools
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]


def split_rev(spec: str) -> tuple[str, str | None]:
    """'configs/yolov8n-attn.yaml@66f4337' -> ('configs/yolov8n-attn.yaml', '66f4337'); no '@' -> (spec, None)."""
    head, sep, rev = spec.rpartition("@")
    if sep and re.fullmatch(r"[\w.~^/-]+", rev):
        return head, rev
    return spec, None


@functools.cache
def attention2d_at(rev: str) -> type:
    """A subclass of today's Attention2d whose methods are those of `rev` (so isinstance checks still hold)."""
    from yolo_attn.layers.attention2d import Attention2d

    package = "yolo_attn"  # 0.1.0's layout; the re-layout moved the file to yolo_attn/layers/ (old names aliased)
    if rev.endswith(".py") and Path(rev).is_file():  # a saved copy, for trees without git history
        src, origin = Path(rev).read_text(), rev
        package = "yolo_attn.layers" if "from .checks import" in src else package
    else:
        homes = (("yolo_attn/layers/attention2d.py", "yolo_attn.layers"), ("yolo_attn/attention2d.py", "yolo_attn"))
        for path, package in homes:
            try:
                src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{path}"],
                                     check=True, capture_output=True, text=True).stdout
                break
            except (OSError, subprocess.CalledProcessError) as e:
                error = e
        else:
            why = getattr(error, "stderr", error)
            raise SystemExit(f"cannot read yolo_attn/attention2d.py at revision {rev!r} ({why}); "
                             f"without git history, pass the file `git show {rev}:yolo_attn/attention2d.py` writes")
        origin = f"{rev}:{path}"
    name = f"{package}._attention2d_" + re.sub(r"\W", "_", rev)
    module = types.ModuleType(name)
    module.__package__ = package  # its relative imports resolve against today's package
    sys.modules[name] = module
    exec(compile(src, origin, "exec"), module.__dict__)
    skip = {"__module__", "__dict__", "__weakref__", "__doc__", "__init__"}
    methods = {k: v for k, v in vars(module.Attention2d).items() if k not in skip}
    if "shortcut" not in inspect.signature(methods["forward"]).parameters:  # before the shortcut argument
        methods["forward"] = _with_shortcut(methods["forward"])
    methods["folds_norm"] = "fuse_input_norm" in vars(module.Attention2d)  # BatchNorm folding at inference
    return type(f"Attention2d@{rev}", (Attention2d,), methods)


def _with_shortcut(forward):
    """`forward(x)` of a revision before `Attention2d.forward(x, shortcut)`: the block's add done as it did then."""

    def forward_shortcut(self, x, shortcut=None):
        out = forward(self, x)
        return out if shortcut is None else shortcut + out

    signature = inspect.signature(forward_shortcut)
    functools.update_wrapper(forward_shortcut, forward)
    forward_shortcut.__signature__ = signature  # callers binding `shortcut=` (THOP's FLOP rules) see it
    return forward_shortcut


def use_revision(model: nn.Module, rev: str) -> nn.Module:
    """Give every Attention2d in `model` the forward of revision `rev`, in place; returns `model`."""
    from yolo_attn.layers.attention2d import Attention2d

    cls = attention2d_at(rev)
    swapped = 0
    for m in model.modules():
        if isinstance(m, Attention2d):
            m.__class__ = cls
            swapped += 1
        attn = getattr(m, "attn", None)
        if isinstance(attn, Attention2d) and callable(getattr(m, "fuse", None)) and not cls.folds_norm:
            m.fuse = types.MethodType(lambda self: self, m)  # the revision cannot fold its norm: fusing leaves it
    if not swapped:
        raise SystemExit(f"@{rev}: the model has no Attention2d to run at that revision")
    return model
