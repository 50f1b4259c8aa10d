"""Warm-start an attention model from a plain checkpoint: map layers by order around the inserted yolo_attn rows.

Ultralytics transfers weights by name (`model.<index>.<...>`) and shape. Inserting attention rows shifts every later
index, so name matching leaves most of the neck and the head untrained, and can hand a layer another layer's
weights when shapes happen to agree. Here the two layer lists are compared with the yolo_attn rows taken out
(they preserve channels, so a row is transparent to the graph): source layer k maps to the k-th non-inserted target
layer, and the mapping is accepted only if every pair has the same type, the same state-dict keys and shapes, and
the same inputs once the `from` indices are remapped. Anything else is a `Mismatch`, never a guess.

Plain torch on layer lists and state dicts; no Ultralytics import (the hook lives in `yolo_attn.integration`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch.nn as nn

__all__ = ["LayerMap", "LayerSpec", "Mismatch", "describe", "is_inserted", "map_layers", "reorder", "report"]

IMAGE = -1  # input index of a layer reading the model input


class Mismatch(ValueError):
    """The source is not the target minus its yolo_attn rows; the message says where they first differ."""


def is_inserted(module: nn.Module) -> bool:
    """Whether a model row is a yolo_attn layer (one the plain model does not have)."""
    return type(module).__module__.split(".")[0] == "yolo_attn"


@dataclass(frozen=True)
class LayerSpec:
    """What must agree between a source layer and its target: type, inputs and every tensor's shape."""

    index: int
    type: str  # "module.Class"
    inputs: tuple[int, ...] | None  # absolute indices of the layers read (IMAGE: the model input); None: unknown
    shapes: Mapping[str, tuple[int, ...]] = field(repr=False)  # layer-local state-dict key -> shape
    inserted: bool = False

    @property
    def name(self) -> str:
        return self.type.rsplit(".", 1)[-1]


def _inputs(k: int, f) -> tuple[int, ...] | None:
    """Absolute input indices of row k from an Ultralytics `from` (-1: previous row; other negatives count back)."""
    if isinstance(f, bool):
        return None
    if isinstance(f, int):
        f = [f]
    if not isinstance(f, (list, tuple)) or not all(isinstance(j, int) and not isinstance(j, bool) for j in f):
        return None
    return tuple(j if j >= 0 else max(k + j, IMAGE) for j in f)


def describe(layers: Sequence[nn.Module]) -> list[LayerSpec]:
    """Describe an Ultralytics layer list (`model.model`): each row's class, inputs (from `.f`) and tensor shapes."""
    return [
        LayerSpec(
            index=k,
            type=f"{type(m).__module__}.{type(m).__qualname__}",
            inputs=_inputs(k, getattr(m, "f", None)),
            shapes={key: tuple(t.shape) for key, t in m.state_dict().items()},
            inserted=is_inserted(m),
        )
        for k, m in enumerate(layers)
    ]


@dataclass(frozen=True)
class LayerMap:
    """Source row index -> target row index; `fresh` are target rows with no source (left at initialisation)."""

    mapping: dict[int, int]
    fresh: tuple[int, ...]
    n_src: int
    n_dst: int

    @property
    def identity(self) -> bool:
        """Same rows at the same indices: name-based transfer is already right."""
        return self.n_src == self.n_dst and not self.fresh and all(s == d for s, d in self.mapping.items())

    def remap_key(self, key: str, prefix: str = "model.") -> str | None:
        """`model.<src>.<rest>` -> `model.<dst>.<rest>`; None for a source row with no target. Other keys unchanged."""
        if not key.startswith(prefix):
            return key
        idx, _, rest = key[len(prefix) :].partition(".")
        if not idx.isdigit():
            return key
        dst = self.mapping.get(int(idx))
        return None if dst is None else f"{prefix}{dst}.{rest}"

    def remap_state_dict(self, state_dict: Mapping[str, object], prefix: str = "model.") -> dict[str, object]:
        """A source state dict under target names (rows without a target are dropped)."""
        out = {}
        for key, value in state_dict.items():
            new = self.remap_key(key, prefix)
            if new is not None:
                out[new] = value
        return out

    def summary(self) -> str:
        """Compact mapping, e.g. `0-15->0-15, 16->17, 17-18->18-19, 22->25`."""
        runs: list[list[int]] = []  # [src start, dst start, length]
        for s, d in sorted(self.mapping.items()):
            if runs and s == runs[-1][0] + runs[-1][2] and d == runs[-1][1] + runs[-1][2]:
                runs[-1][2] += 1
            else:
                runs.append([s, d, 1])

        def span(a: int, n: int) -> str:
            return str(a) if n == 1 else f"{a}-{a + n - 1}"

        return ", ".join(f"{span(s, n)}->{span(d, n)}" for s, d, n in runs)


def _resolve(specs: Sequence[LayerSpec], j: int) -> tuple[int, int]:
    """Follow input j back through inserted rows: (first non-inserted row or IMAGE, number of rows passed)."""
    depth = 0
    if not IMAGE <= j < len(specs):
        raise Mismatch(f"a layer reads row {j}, which does not exist")
    while j != IMAGE and specs[j].inserted:
        ins = specs[j].inputs
        if ins is None or len(ins) != 1 or not IMAGE <= ins[0] < j:
            raise Mismatch(f"yolo_attn row {j} {specs[j].name} does not read exactly one earlier row")
        j, depth = ins[0], depth + 1
    return j, depth


def _fmt(shape: tuple[int, ...] | None) -> str:
    return "missing" if shape is None else str(tuple(shape))


def _compare(s: LayerSpec, d: LayerSpec, free: Sequence[str], inputs_s, inputs_d) -> None:
    where = f"source layer {s.index} {s.name} -> target layer {d.index} {d.name}"
    if s.type != d.type:
        raise Mismatch(f"{where}: different layer types ({s.type} vs {d.type})")
    if inputs_s != inputs_d:
        raise Mismatch(f"{where}: reads layers {list(inputs_s)} (remapped) in the source, {list(inputs_d)} here")
    for key in [*s.shapes, *(k for k in d.shapes if k not in s.shapes)]:
        a, b = s.shapes.get(key), d.shapes.get(key)
        if a is not None and b is not None and any(key.startswith(p) for p in free):
            continue  # allowed to differ (e.g. class-count-dependent head tensors)
        if a != b:
            raise Mismatch(f"{where}: {key} is {_fmt(a)} in the source, {_fmt(b)} here")


def map_layers(
    src: Sequence[LayerSpec], dst: Sequence[LayerSpec], free: Mapping[int, Sequence[str]] | None = None
) -> LayerMap:
    """Map source rows onto target rows by order once the yolo_attn rows are taken out of both; verify everything.

    Args:
        src: the source model's rows (`describe(source.model)`), usually a plain YOLO.
        dst: the target model's rows, with yolo_attn rows inserted.
        free: target row index -> key prefixes whose shapes may differ there (what Ultralytics' own load adapts:
            the class-count-dependent head branches, the first conv's input channels). Keys must still exist in both.

    Returns:
        LayerMap: every non-inserted source row mapped. A yolo_attn row of the source is mapped too when the target
        has one of the same type and shapes in the same place (after the same layer, same position in a chain of
        inserted rows); other target yolo_attn rows are `fresh`.

    Raises:
        Mismatch: types, tensor keys/shapes, the remapped `from` graph or the number of rows differ.
    """
    free = free or {}
    src_base = [s.index for s in src if not s.inserted]
    dst_base = [d.index for d in dst if not d.inserted]
    if not dst_base or len(src_base) != len(dst_base):
        raise Mismatch(f"the source has {len(src_base)} layers besides yolo_attn rows, the target {len(dst_base)}")
    for specs in (src, dst):
        for x in specs:
            if x.inputs is None:
                raise Mismatch(f"layer {x.index} {x.name} has no readable `from` (not built by Ultralytics?)")
    mapping = dict(zip(src_base, dst_base))
    to_dst = {**mapping, IMAGE: IMAGE}

    for s_idx, d_idx in mapping.items():
        s, d = src[s_idx], dst[d_idx]
        ins_s = tuple(to_dst[_resolve(src, j)[0]] for j in s.inputs)
        ins_d = tuple(_resolve(dst, j)[0] for j in d.inputs)
        _compare(s, d, free.get(d_idx, ()), ins_s, ins_d)

    # Inserted rows: a source row takes a target row at the same anchor (mapped base row, depth in the chain).
    def anchors(specs, to_target):
        out = {}
        for x in specs:
            if x.inserted:
                base, depth = _resolve(specs, x.index)
                out.setdefault((to_target(base), depth), []).append(x)
        return out

    src_anchor = anchors(src, lambda b: to_dst[b])
    dst_anchor = anchors(dst, lambda b: b)
    fresh = []
    for key, rows in dst_anchor.items():
        cands = src_anchor.get(key, [])
        for d in rows:
            match = [s for s in cands if s.type == d.type and dict(s.shapes) == dict(d.shapes)]
            if len(rows) == 1 and len(match) == 1:
                mapping[match[0].index] = d.index
            else:
                fresh.append(d.index)
    return LayerMap(mapping=dict(sorted(mapping.items())), fresh=tuple(sorted(fresh)), n_src=len(src), n_dst=len(dst))


def reorder(src_layers: Sequence[nn.Module], layer_map: LayerMap) -> nn.Sequential:
    """The source rows placed at their target indices (parameter-free placeholders elsewhere), sharing tensors."""
    rows: list[nn.Module] = [nn.Identity() for _ in range(layer_map.n_dst)]
    for s, d in layer_map.mapping.items():
        rows[d] = src_layers[s]
    return nn.Sequential(*rows)


def report(
    layer_map: LayerMap,
    src_layers: Sequence[nn.Module],
    dst_layers: Sequence[nn.Module],
    src_state: Mapping[str, object],
    dst_state: Mapping[str, object],
    notes: Mapping[int, str] | None = None,
    prefix: str = "model.",
) -> tuple[bool, str]:
    """After a load by `layer_map`: (every source tensor transferred?, one line saying what moved and what did not).

    A source tensor counts as transferred when its remapped name exists in the target with the same shape (what
    Ultralytics' `intersect_dicts` loads). `notes` adds a word to a target row left partly at initialisation.
    """
    notes = notes or {}
    moved = {
        k
        for k, v in layer_map.remap_state_dict(src_state, prefix).items()
        if k in dst_state and tuple(dst_state[k].shape) == tuple(v.shape)
    }
    per_row: dict[int, int] = {}  # target row -> its tensors
    left: dict[int, int] = {}  # target row -> its tensors left at initialisation
    for k in dst_state:
        idx = k[len(prefix) :].partition(".")[0] if k.startswith(prefix) else ""
        if idx.isdigit():
            per_row[int(idx)] = per_row.get(int(idx), 0) + 1
            if k not in moved:
                left[int(idx)] = left.get(int(idx), 0) + 1
    kept = []
    for i, n in sorted(left.items()):
        text = f"{i} {type(dst_layers[i]).__name__}"
        if i not in layer_map.fresh or n != per_row[i]:
            text += f" ({n}/{per_row[i]} tensors{', ' + notes[i] if i in notes else ''})"
        kept.append(text)
    mapped = set(layer_map.mapping)
    dropped = [
        f"{i} {type(m).__name__}" for i, m in enumerate(src_layers) if i not in mapped and len(m.state_dict())
    ]
    complete = len(moved) == len(src_state)
    line = (
        f"pretrained layers mapped by order around the yolo_attn rows ({layer_map.summary()}); "
        f"transferred {len(moved)}/{len(src_state)} source tensors"
        + (f" (source rows not in this model: {', '.join(dropped)})" if dropped else "")
        + f"; left at initialisation: {', '.join(kept) or 'nothing'}"
        + (" (only the inserted yolo_attn rows)" if left and set(left) <= set(layer_map.fresh) else "")
    )
    return complete, line
