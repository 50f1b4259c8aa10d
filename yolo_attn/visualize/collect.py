"""Collecting attention from a model: load it, pick its attention layers, run Ultralytics' predictor with a
forward pre-hook on each chosen layer, and turn each image's captured inputs into an `ImageAttention`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from yolo_attn import Attention2d, SelfAttentionBlock

from .queries import ImageAttention, LayerAttention, Letterbox, kv_pool_factor, query_attention

# Predictor arguments this module controls: no files written, no augmentation or compilation (hooks must see the
# plain forward). A batch of several images (a list source) is handled: results follow the forward in order.
_FORCED_PREDICT_ARGS = {"stream": True, "batch": 1, "save": False, "augment": False, "verbose": False, "embed": None,
                        "compile": False}


def _load_yolo(model: Any):
    """A YOLO object from a YOLO / Model object or a weights (or YAML) path."""
    from ultralytics import YOLO
    from ultralytics.engine.model import Model

    if isinstance(model, Model):
        yolo = model
    elif isinstance(model, (str, Path)):
        if not Path(model).exists() and not str(model).endswith((".yaml", ".yml")):
            raise FileNotFoundError(f"model {str(model)!r} not found")
        yolo = YOLO(str(model))
    else:
        raise TypeError(f"model must be an Ultralytics YOLO object or a .pt path, got {type(model).__name__}.")
    if not isinstance(yolo.model, nn.Module) or not isinstance(getattr(yolo.model, "model", None), nn.Sequential):
        raise TypeError("model must hold a PyTorch detection model (a .pt checkpoint), not an exported one.")
    return yolo


def attention_layers(net: nn.Module) -> dict[int, Attention2d]:
    """{index into net.model: its Attention2d} for every SelfAttentionBlock or bare Attention2d layer of `net`."""
    found = {}
    for i, m in enumerate(net.model):
        if isinstance(m, SelfAttentionBlock):
            found[i] = m.attn
        elif isinstance(m, Attention2d):
            found[i] = m
    return found


def _describe(m: nn.Module) -> str:
    if isinstance(m, SelfAttentionBlock):
        return f"SelfAttentionBlock({m.attn_type})"
    return type(m).__name__


def _resolve_layers(net: nn.Module, layers: int | Iterable[int] | None) -> dict[int, Attention2d]:
    available = attention_layers(net)
    if not available:
        raise ValueError("the model has no SelfAttentionBlock or Attention2d layer to visualise.")
    if layers is None:
        return available
    chosen = {}
    for i in [layers] if isinstance(layers, int) else list(layers):
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"layer indices must be integers, got {i!r}.")
        j = int(i) + len(net.model) if i < 0 else int(i)
        if j not in available:
            what = type(net.model[j]).__name__ if 0 <= j < len(net.model) else "out of range"
            raise ValueError(f"layer {i} is not an attention layer ({what}); attention layers: {sorted(available)}.")
        chosen[j] = available[j]
    return dict(sorted(chosen.items()))


def _check_queries(queries: Any) -> np.ndarray | None:
    if queries is None:
        return None
    q = np.asarray(queries.cpu() if isinstance(queries, torch.Tensor) else queries, dtype=np.float64)
    if q.ndim == 1 and q.shape == (2,):
        q = q[None]
    if q.ndim != 2 or q.shape[1] != 2 or len(q) == 0:
        raise ValueError(f"queries must be (row, col) pairs, got shape {q.shape}.")
    return q


# ---------------------------------------------------------------------------------------------- collection
def collect_attention(
    model: Any,
    source: Any,
    layers: int | Iterable[int] | None = None,
    queries: Any = None,
    *,
    max_queries: int = 6,
    **predict_kwargs: Any,
) -> Iterator[ImageAttention]:
    """Run the predictor over `source` and yield, per image, its detections and the chosen queries' attention.

    Args:
        model: Ultralytics YOLO object, or path to a ``.pt`` checkpoint.
        source: anything `YOLO.predict` takes (image path, folder, glob, array...).
        layers: indices into ``model.model``; None = every SelfAttentionBlock (and bare Attention2d) layer.
        queries: (row, col) pixels of the original image, used for every image; None = the centre of each
            detected box (the `max_queries` most confident), or the image centre when nothing is detected.
        max_queries: most box-centre queries per image.
        **predict_kwargs: passed to `YOLO.predict` (imgsz, conf, iou, classes, device; device defaults to "cpu").

    Yields:
        ImageAttention, one per image.
    """
    yolo = _load_yolo(model)
    chosen = _resolve_layers(yolo.model, layers)  # checked before anything runs
    fixed = _check_queries(queries)
    if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
        raise ValueError(f"max_queries must be an integer >= 1, got {max_queries!r}.")
    kwargs = {"device": "cpu", **predict_kwargs, **_FORCED_PREDICT_ARGS}

    # predict() sets the predictor up (on its own deep copy of the model) and returns a generator that has not run
    # yet: the hooks go on the copy that will actually run, and come off again however the loop ends.
    results = yolo.predict(source, **kwargs)
    net = _running_model(yolo.predictor.model)
    running = attention_layers(net)
    chosen = {i: running[i] for i in chosen}
    captured: dict[Any, Any] = {}

    def new_batch(m, args):  # a forward starts: its images are yielded next, in order, before the next forward
        captured.clear()
        captured.update(input=args[0].shape, next=0)

    handles = [net.model[0].register_forward_pre_hook(new_batch)]
    for i, attn in chosen.items():
        def hook(m, args, i=i):
            captured[i] = args[0].detach()

        handles.append(attn.register_forward_pre_hook(hook))  # an Attention2d's input: for a block, norm(x)
    try:
        for res in results:
            b = captured.get("next", 0)
            if "input" not in captured or any(i not in captured for i in chosen) or b >= captured["input"][0]:
                raise RuntimeError("the attention layers did not run during prediction.")
            captured["next"] = b + 1
            yield _image_attention(res, {i: captured[i][b : b + 1] for i in chosen}, captured["input"], chosen, net,
                                   fixed, max_queries)
    finally:
        for h in handles:
            h.remove()


def _running_model(backend: nn.Module) -> nn.Module:
    """The Ultralytics BaseModel that the predictor's AutoBackend runs (its own copy of the user's model)."""
    from ultralytics.nn.tasks import BaseModel

    m = backend
    for _ in range(4):  # AutoBackend -> (backend ->) model; a compiled module keeps the original in _orig_mod
        if isinstance(m, BaseModel):
            return m
        m = getattr(m, "_orig_mod", None) or getattr(m, "model", None)
    raise TypeError("the predictor does not run a PyTorch model; attention maps need a .pt checkpoint.")


def _image_attention(res, features, input_shape, chosen, net, fixed, max_queries) -> ImageAttention:
    h0, w0 = res.orig_shape
    lb = Letterbox.from_shapes(input_shape[-2:], (h0, w0))
    b = res.boxes
    boxes = np.zeros((0, 6)) if b is None or len(b) == 0 else b.data[:, :6].cpu().double().numpy()
    boxes = boxes[np.argsort(-boxes[:, 4], kind="stable")]
    names = dict(res.names)
    if fixed is not None:
        bad = [(r, c) for r, c in fixed if not (0 <= r < h0 and 0 <= c < w0)]
        if bad:
            raise ValueError(f"query {bad[0]} is outside image {res.path} of {h0}x{w0} (row, col) pixels.")
        queries = fixed + 0.5  # pixel centres
        labels, qboxes = [f"query ({int(r)}, {int(c)})" for r, c in fixed], [None] * len(fixed)
    elif len(boxes):
        top = boxes[:max_queries]
        queries = np.stack([(top[:, 1] + top[:, 3]) / 2, (top[:, 0] + top[:, 2]) / 2], 1)
        labels = [f"{names.get(int(c), int(c))} {p:.2f}" for p, c in top[:, 4:6]]
        qboxes = list(range(len(top)))
    else:
        queries = np.array([[h0 / 2, w0 / 2]])
        labels, qboxes = ["image centre (no detections)"], [None]

    layers = []
    q_in = lb.to_input(queries)  # (Q, 2) network-input (row, col)
    for i, attn in chosen.items():
        x = features[i]
        H, W = x.shape[-2:]
        sy, sx = lb.input_hw[0] / H, lb.input_hw[1] / W
        cells = np.stack(
            [np.clip(np.floor(q_in[:, 0] / sy), 0, H - 1), np.clip(np.floor(q_in[:, 1] / sx), 0, W - 1)], 1
        ).astype(np.int64)
        weights, distance, entropy = query_attention(
            attn, x, torch.from_numpy(cells).to(x.device), (sy / lb.gain_y, sx / lb.gain_x)
        )
        f = kv_pool_factor(H, W, attn.kv_stride, attn.kv_tokens)
        # Key cell under each original pixel centre: orig -> input (letterbox) -> feature pixel -> pooled key.
        rows = lb.to_input(np.stack([np.arange(h0) + 0.5, np.zeros(h0)], 1))[:, 0]
        cols = lb.to_input(np.stack([np.zeros(w0), np.arange(w0) + 0.5], 1))[:, 1]
        key_rows = np.clip(np.floor(rows / sy), 0, H - 1).astype(np.int64) // f
        key_cols = np.clip(np.floor(cols / sx), 0, W - 1).astype(np.int64) // f
        layers.append(
            LayerAttention(
                index=i,
                module=_describe(net.model[i]),
                feature_hw=(H, W),
                key_hw=tuple(weights.shape[-2:]),
                stride_yx=(sy, sx),
                query_cells=cells,
                weights=weights.cpu().numpy(),
                distance=distance.cpu().numpy(),
                entropy=entropy.cpu().numpy(),
                key_rows=key_rows,
                key_cols=key_cols,
            )
        )
    return ImageAttention(
        path=str(res.path),
        image=res.orig_img,
        boxes=boxes,
        names=names,
        queries=queries,
        query_labels=labels,
        query_boxes=qboxes,
        letterbox=lb,
        layers=layers,
    )
