"""Run a model with the Attention2d of another git revision: before/after timing in one process, same weights.

`benchmark.py configs/yolov8n-attn.yaml@66f4337` and `block_costs.py --ref 66f4337` build the model as usual, then
give every Attention2d the methods of Attention2d as it was at that revision. The revision's whole `yolo_attn`
package is read (one `git archive`) and imported under a private name (`_yolo_attn_at_<rev>`) without running its
`__init__` (so nothing registers with Ultralytics twice); the module that defines `class Attention2d` is found by
reading the sources, so the revision may keep it in `yolo_attn/attention2d.py`, `yolo_attn/layers/attention2d.py`
or anywhere else in the package, and its relative imports resolve inside that revision.

Without git history (a GPU host given a copy of the tree), REV may instead be
- a directory holding the revision's `yolo_attn/` package (or the package folder itself),
- a `.tar` file as `git archive REV yolo_attn` writes it,
- a single `attention2d.py` (a revision before the package was split into folders): its relative imports then
  resolve against today's package beside today's Attention2d.
The other modules (position table, block, ...) stay the working tree's, and the revision's Attention2d must keep
today's attributes (c1, dim, num_heads, qkv, proj, pos, ...), as every revision since the key/value cap does.
A revision from before BatchNorm folding keeps its blocks' norms when the model is fused, as it did then.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.abc
import importlib.util
import inspect
import io
import re
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "yolo_attn"
DEFINES_ATTENTION2D = re.compile(r"^class Attention2d\b", re.M)
_IMPORTERS: dict[str, "_RevisionImporter"] = {}  # private package name -> its importer, one per revision


def split_rev(spec: str) -> tuple[str, str | None]:
    """'configs/yolov8n-attn.yaml@66f4337' -> ('configs/yolov8n-attn.yaml', '66f4337'); no '@' -> (spec, None)."""
    head, sep, rev = spec.rpartition("@")
    if sep and re.fullmatch(r"[\w.~^/-]+", rev):
        return head, rev
    return spec, None


def package_sources(rev: str, repo: Path = REPO) -> tuple[dict[str, str], str]:
    """The `yolo_attn` package of `rev` as {path inside the package ('layers/attention2d.py'): source}, and the
    prefix its code objects name as their file ('66f4337:yolo_attn/')."""
    path = Path(rev)
    if path.is_dir():
        root = path / PACKAGE if (path / PACKAGE).is_dir() else path
        files = {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*.py"))}
        return files, f"{root}/"
    if rev.endswith(".tar") and path.is_file():
        return _from_tar(path.read_bytes(), rev), f"{rev}:{PACKAGE}/"
    try:
        tar = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", rev, PACKAGE],
                             check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        why = getattr(e, "stderr", b"") or str(e)
        raise SystemExit(f"cannot read the {PACKAGE} package at revision {rev!r} "
                         f"({why.decode(errors='replace').strip() if isinstance(why, bytes) else why}); without git "
                         f"history, pass a directory holding that revision's {PACKAGE}/ or the .tar "
                         f"`git archive {rev} {PACKAGE}` writes") from e
    return _from_tar(tar, rev), f"{rev}:{PACKAGE}/"


def _from_tar(data: bytes, what: str) -> dict[str, str]:
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if member.isfile() and name.startswith(f"{PACKAGE}/") and name.endswith(".py"):
                files[name.removeprefix(f"{PACKAGE}/")] = tar.extractfile(member).read().decode()
    if not files:
        raise SystemExit(f"{what}: holds no {PACKAGE}/*.py")
    return files


class _RevisionImporter(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports `<private name>.<sub>` from a revision's sources held in memory (nothing written to disk)."""

    def __init__(self, name: str, files: dict[str, str], origin: str):
        self.name, self.files, self.origin = name, files, origin

    def _path(self, fullname: str) -> tuple[str, bool] | None:
        if fullname == self.name:
            return "", True  # the top package: an empty module, its __init__ not run
        if not fullname.startswith(self.name + "."):
            return None
        rel = fullname[len(self.name) + 1:].replace(".", "/")
        if f"{rel}/__init__.py" in self.files:
            return f"{rel}/__init__.py", True
        if f"{rel}.py" in self.files:
            return f"{rel}.py", False
        return None

    def find_spec(self, fullname, path=None, target=None):
        found = self._path(fullname)
        if found is None:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, origin=self.origin + found[0], is_package=found[1])
        if found[1]:
            spec.submodule_search_locations = []
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        rel, _ = self._path(module.__name__)
        if rel:
            exec(compile(self.files[rel], self.origin + rel, "exec"), module.__dict__)


def revision_attention2d(rev: str, repo: Path = REPO) -> type:
    """The Attention2d class of revision `rev` (a git revision or a copy of its tree, see the module docstring)."""
    if rev.endswith(".py") and Path(rev).is_file():
        return _single_file_attention2d(rev)
    files, origin = package_sources(rev, repo)
    defining = sorted(p for p, src in files.items() if DEFINES_ATTENTION2D.search(src))
    if not defining:
        raise SystemExit(f"@{rev}: no module of its {PACKAGE} package defines class Attention2d")
    tag = re.sub(r"\W", "_", rev)[-40:] + "_" + hashlib.sha1(f"{repo}\0{rev}".encode()).hexdigest()[:8]
    name = f"_yolo_attn_at_{tag}"  # one private package per (checkout, revision)
    if name not in _IMPORTERS:
        _IMPORTERS[name] = _RevisionImporter(name, files, origin)
        sys.meta_path.insert(0, _IMPORTERS[name])
    module_path = defining[0].removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    return importlib.import_module(f"{name}.{module_path}").Attention2d


def _single_file_attention2d(path: str) -> type:
    """A saved `attention2d.py` of a flat-package revision, its relative imports against today's package."""
    from yolo_attn import Attention2d

    name = "_yolo_attn_file_" + re.sub(r"\W", "_", path)
    module = types.ModuleType(name)
    module.__package__ = Attention2d.__module__.rpartition(".")[0]
    sys.modules[name] = module
    exec(compile(Path(path).read_text(), path, "exec"), module.__dict__)
    return module.Attention2d


@functools.cache
def attention2d_at(rev: str, repo: Path = REPO) -> type:
    """A subclass of today's Attention2d whose methods are those of `rev` (so isinstance checks still hold)."""
    from yolo_attn import Attention2d

    cls = _with_methods_of(revision_attention2d(rev, repo), Attention2d, rev)
    if "shortcut" not in inspect.signature(cls.forward).parameters:  # before the shortcut argument
        cls.forward = _with_shortcut(cls.forward)
    return cls


def _with_methods_of(old: type, today: type, rev: str) -> type:
    """A subclass of `today` carrying the methods of the revision's class `old` (its own mixins too)."""
    skip = {"__module__", "__dict__", "__weakref__", "__doc__", "__init__", "__qualname__"}
    methods: dict = {}
    for cls in reversed(old.__mro__):  # the revision's own classes, base first
        if cls.__module__.startswith(("_yolo_attn_at_", "_yolo_attn_file_")):
            methods.update({k: v for k, v in vars(cls).items() if k not in skip})
    methods["folds_norm"] = hasattr(old, "fuse_input_norm")  # BatchNorm folding at inference
    methods["revision_classes"] = sys.modules[old.__module__].__dict__  # where its submodules' classes are looked up
    return type(f"{today.__name__}@{rev}", (today,), methods)


@functools.cache
def _child_at(rev: str, today: type, old: type) -> type:
    return _with_methods_of(old, today, rev)


def _with_shortcut(forward):
    """`forward(x)` of a revision before `Attention2d.forward(x, shortcut)`: the block's add done as it did then."""

    def forward_shortcut(self, x, shortcut=None):
        out = forward(self, x)
        return out if shortcut is None else shortcut + out

    signature = inspect.signature(forward_shortcut)
    functools.update_wrapper(forward_shortcut, forward)
    forward_shortcut.__signature__ = signature  # callers binding `shortcut=` (THOP's FLOP rules) see it
    return forward_shortcut


def use_revision(model: nn.Module, rev: str, repo: Path = REPO) -> nn.Module:
    """Give every Attention2d in `model` the forward of revision `rev` (of the git checkout `repo`), in place, and
    its children (the position table) the methods of the revision's class of the same name; returns `model`."""
    from yolo_attn import Attention2d

    cls = attention2d_at(rev, Path(repo))
    swapped = 0
    for m in model.modules():
        if isinstance(m, Attention2d):
            m.__class__ = cls
            swapped += 1
            for child in m.children():  # e.g. its position table: the revision's, where it defines one by that name
                old = cls.revision_classes.get(type(child).__name__)
                if isinstance(old, type) and old.__module__ != type(child).__module__ and issubclass(old, nn.Module):
                    child.__class__ = _child_at(rev, type(child), old)
        attn = getattr(m, "attn", None)
        if isinstance(attn, Attention2d) and callable(getattr(m, "fuse", None)) and not cls.folds_norm:
            m.fuse = types.MethodType(lambda self: self, m)  # the revision cannot fold its norm: fusing leaves it
    if not swapped:
        raise SystemExit(f"@{rev}: the model has no Attention2d to run at that revision")
    return model
