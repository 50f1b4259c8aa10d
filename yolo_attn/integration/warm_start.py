"""Warm start: `BaseModel.load` maps a plain checkpoint's layers around the inserted attention rows.

The mapping itself is plain torch (`transfer.py`); this is the hook into Ultralytics.
"""

from __future__ import annotations

import torch.nn as nn

from yolo_attn_autoload import mark_patch


def _classes(head: nn.Module, tasks) -> int | None:
    """The class count of an output row: Detect and its subclasses (Segment, Pose, OBB, ...) or Classify."""
    if isinstance(head, tasks.Classify):
        return head.linear.out_features
    return getattr(head, "nc", None) if isinstance(head, tasks.Detect) else None


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
            if _classes(rows[-1], tasks) != _classes(src_rows[-1], tasks):  # class outputs: re-fit to the new count
                free[len(rows) - 1] = ("linear.",) if isinstance(rows[-1], tasks.Classify) else ("cv3.", "one2one_cv3.")
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
            notes[len(rows) - 1] = f"nc {_classes(src_rows[-1], tasks) or '?'} -> {_classes(rows[-1], tasks)}"
        complete, message = transfer.report(plan, src_rows, rows, src.state_dict(), self.state_dict(), notes)
        names = getattr(src, "names", None)
        if complete and isinstance(names, dict) and not hasattr(self, "set_classes"):
            if getattr(self, "names", None) == {i: str(i) for i in range(len(names))}:  # YAML placeholders
                self.names = dict(names)  # as the real load does when every tensor transfers
        if verbose:
            LOGGER.info(f"yolo-attn: {message}")
        return result

    mark_patch(load, original)
    tasks.BaseModel.load = load
