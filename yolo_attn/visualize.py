"""Show what the attention looks at: heat maps of chosen queries' attention over the image, and a per-layer summary.

For a trained attention detector (an Ultralytics ``.pt`` or a ``YOLO`` object) and an image or a folder, this
runs Ultralytics' own predictor (its letterbox, its NMS, its boxes), captures the input of each chosen attention
layer with a forward pre-hook, and then asks the layer for the attention of the chosen query pixels only
(`Attention2d.attention_map`): queries x keys weights, never the full N x N map. Queries default to the centre of
each detected box (the most confident `max_queries`), or the image centre when nothing is detected.

Every key cell's weight is painted over the original-image pixels it covers, undoing the letterbox with the same
transform the predictor applies to its boxes (`ultralytics.utils.ops.scale_boxes`), so heat and boxes line up.

Command line::

    python -m yolo_attn.visualize MODEL SOURCE --out DIR [--layer I ...] [--query ROW,COL ...] [--heads]
                                  [--imgsz N] [--conf C] [--max-queries K] [--device cpu]

Python::

    from yolo_attn.visualize import visualize_attention, summarize_attention
    paths = visualize_attention("best.pt", "images/", "attn_out")         # PNGs + printed table
    rows = summarize_attention("best.pt", "images/", queries=[(120, 200)])  # numbers only

Ultralytics is imported only when one of these runs; importing this module does not import it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from yolo_attn import Attention2d, SelfAttentionBlock
from yolo_attn.layers.pooling import kv_pool_factor

__all__ = [
    "ImageAttention",
    "LayerAttention",
    "Letterbox",
    "attention_layers",
    "collect_attention",
    "format_summary",
    "main",
    "query_attention",
    "summarize_attention",
    "visualize_attention",
]

# Predictor arguments this module controls: no files written, no augmentation or compilation (hooks must see the
# plain forward). A batch of several images (a list source) is handled: results follow the forward in order.
_FORCED_PREDICT_ARGS = {"stream": True, "batch": 1, "save": False, "augment": False, "verbose": False, "embed": None,
                        "compile": False}


# ---------------------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Letterbox:
    """Map between original-image and network-input pixel coordinates: ``input = orig * gain + pad`` per axis.

    Coordinates are continuous: pixel ``(r, c)`` covers ``[r, r + 1) x [c, c + 1)``.
    """

    gain_y: float
    gain_x: float
    pad_y: float
    pad_x: float
    input_hw: tuple[int, int]  # network input (letterboxed) height, width
    orig_hw: tuple[int, int]  # original image height, width

    @classmethod
    def from_shapes(cls, input_hw: Sequence[int], orig_hw: Sequence[int]) -> Letterbox:
        """The transform Ultralytics undoes on its predicted boxes, read off `ops.scale_boxes` itself.

        `scale_boxes(input_hw, xywh, orig_hw, xywh=True)` maps a point x to (x - pad) / gain without clipping, so
        one probe box gives both gains and both paddings exactly as the predictor uses them.
        """
        from ultralytics.utils import ops

        input_hw, orig_hw = (int(input_hw[0]), int(input_hw[1])), (int(orig_hw[0]), int(orig_hw[1]))
        probe = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)  # x, y, w, h in input pixels
        x, y, w, h = ops.scale_boxes(input_hw, probe, orig_hw, xywh=True)[0].tolist()
        gain_x, gain_y = 1.0 / w, 1.0 / h
        return cls(gain_y, gain_x, -y * gain_y, -x * gain_x, input_hw, orig_hw)

    def to_input(self, rc: np.ndarray) -> np.ndarray:
        """(…, 2) original (row, col) -> network-input (row, col)."""
        rc = np.asarray(rc, np.float64)
        return np.stack([rc[..., 0] * self.gain_y + self.pad_y, rc[..., 1] * self.gain_x + self.pad_x], -1)


def _key_cells(H: int, W: int, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres (in feature pixels, continuous) of the key rows and columns: pooling windows are partial at the border."""
    def centres(n: int) -> np.ndarray:
        start = np.arange(math.ceil(n / f)) * f
        return (start + np.minimum(start + f, n)) / 2.0

    return centres(H), centres(W)


def query_attention(
    attn: Attention2d, x: torch.Tensor, cells: torch.Tensor, scale_yx: Sequence[float] = (1.0, 1.0)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Attention of chosen query pixels of one layer, with its distance and entropy: Q x keys work, never N x N.

    Args:
        attn (Attention2d): the attention layer (for a SelfAttentionBlock, its `.attn`).
        x (torch.Tensor): the layer's input, (1, C, H, W) (for a block, after its norm).
        cells (torch.Tensor): (Q, 2) long (row, col) feature pixels of the queries.
        scale_yx (Sequence[float]): length in the caller's unit of one feature pixel along y and x (e.g. original
            image pixels per feature pixel), for the distance.

    Returns:
        weights (heads, Q, Hk, Wk), each (head, query) map summing to 1; distance (heads, Q): attention-weighted
        mean distance from the query pixel's centre to the key cells' centres, in the unit of `scale_yx`;
        entropy (heads, Q) in nats.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"query_attention: expected one (1, C, H, W) map, got shape {tuple(x.shape)}.")
    H, W = x.shape[-2:]
    weights = attn.attention_map(x, cells)[0].float()  # (h, Q, Hk, Wk)
    ky, kx = _key_cells(H, W, kv_pool_factor(H, W, attn.kv_stride, attn.kv_tokens))
    ky, kx = torch.as_tensor(ky, dtype=torch.float32), torch.as_tensor(kx, dtype=torch.float32)
    qy, qx = cells[:, 0].float() + 0.5, cells[:, 1].float() + 0.5  # query pixel centres
    dy = (ky[None, :, None] - qy[:, None, None]) * float(scale_yx[0])  # (Q, Hk, 1)
    dx = (kx[None, None, :] - qx[:, None, None]) * float(scale_yx[1])  # (Q, 1, Wk)
    dist = (dy.square() + dx.square()).sqrt()  # (Q, Hk, Wk)
    distance = (weights * dist).flatten(2).sum(-1)
    entropy = -torch.special.xlogy(weights, weights).flatten(2).sum(-1)
    return weights, distance, entropy


# ---------------------------------------------------------------------------------------------- records
@dataclass
class LayerAttention:
    """One attention layer's maps for the queries of one image."""

    index: int  # index into model.model
    module: str  # e.g. "SelfAttentionBlock(standard)"
    feature_hw: tuple[int, int]  # H, W of the layer's input map
    key_hw: tuple[int, int]  # Hk, Wk of its key grid (after key/value pooling)
    stride_yx: tuple[float, float]  # network-input pixels per feature pixel
    query_cells: np.ndarray  # (Q, 2) feature pixel (row, col) of each query
    weights: np.ndarray  # (heads, Q, Hk, Wk); each (head, query) map sums to 1
    distance: np.ndarray  # (heads, Q) mean attention distance, original-image pixels
    entropy: np.ndarray  # (heads, Q) nats
    key_rows: np.ndarray  # (orig H,) key row covering each original-image row
    key_cols: np.ndarray  # (orig W,) key column covering each original-image column

    @property
    def heads(self) -> int:
        return self.weights.shape[0]

    @property
    def norm_entropy(self) -> np.ndarray:
        """Entropy / log(number of keys): 0 = one key, 1 = uniform."""
        n = self.key_hw[0] * self.key_hw[1]
        return self.entropy / math.log(n) if n > 1 else np.zeros_like(self.entropy)


@dataclass
class ImageAttention:
    """Detections and attention maps of one image."""

    path: str
    image: np.ndarray  # original image, BGR uint8
    boxes: np.ndarray  # (N, 6) x1, y1, x2, y2, conf, cls in original pixels, most confident first
    names: dict[int, str]
    queries: np.ndarray  # (Q, 2) (row, col) query points in original pixels (continuous)
    query_labels: list[str]
    query_boxes: list[int | None]  # row of `boxes` a query is the centre of, or None
    letterbox: Letterbox
    layers: list[LayerAttention]

    def layer(self, index: int) -> LayerAttention:
        """The maps of model layer `index`."""
        for la in self.layers:
            if la.index == index:
                return la
        raise KeyError(f"layer {index} was not collected; collected: {[la.index for la in self.layers]}")

    def heatmap(self, index: int, query: int, head: int | None = None) -> np.ndarray:
        """(orig H, orig W) map: each pixel holds the weight of the key cell covering it (mean over heads if None)."""
        la = self.layer(index)
        w = la.weights[:, query].mean(0) if head is None else la.weights[head, query]
        return w[np.ix_(la.key_rows, la.key_cols)]


# ---------------------------------------------------------------------------------------------- model access
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


# ---------------------------------------------------------------------------------------------- summary
class _Summary:
    """Per-layer running means over images, queries and heads."""

    def __init__(self):
        self.acc: dict[int, dict] = {}

    def add(self, rec: ImageAttention) -> None:
        for la in rec.layers:
            a = self.acc.setdefault(
                la.index,
                dict(module=la.module, heads=la.heads, maps=set(), keys=set(), n=0, dist=0.0, ent=0.0, nent=0.0,
                     head_dist=np.zeros(la.heads), head_ent=np.zeros(la.heads)),
            )
            a["maps"].add(la.feature_hw)
            a["keys"].add(la.key_hw)
            a["n"] += la.weights.shape[1]
            a["dist"] += float(la.distance.mean(0).sum())
            a["ent"] += float(la.entropy.mean(0).sum())
            a["nent"] += float(la.norm_entropy.mean(0).sum())
            a["head_dist"] += la.distance.sum(1)
            a["head_ent"] += la.entropy.sum(1)

    def rows(self) -> list[dict]:
        def shape(s: set) -> str:
            return "x".join(map(str, next(iter(s)))) if len(s) == 1 else "mixed"

        out = []
        for i, a in sorted(self.acc.items()):
            n = max(a["n"], 1)
            out.append(
                dict(layer=i, module=a["module"], heads=a["heads"], map=shape(a["maps"]), keys=shape(a["keys"]),
                     queries=a["n"], distance_px=a["dist"] / n, entropy=a["ent"] / n, norm_entropy=a["nent"] / n,
                     head_distance_px=(a["head_dist"] / n).tolist(), head_entropy=(a["head_ent"] / n).tolist())
            )
        return out


def format_summary(rows: Sequence[dict]) -> str:
    """The per-layer summary as a plain-text table."""
    cols = [("layer", "layer", "{}"), ("module", "module", "{}"), ("heads", "heads", "{}"), ("map", "map", "{}"),
            ("keys", "keys", "{}"), ("queries", "queries", "{}"), ("distance_px", "mean dist (px)", "{:.1f}"),
            ("entropy", "entropy (nats)", "{:.3f}"), ("norm_entropy", "norm. entropy", "{:.3f}")]
    cells = [[h for _, h, _ in cols]] + [[fmt.format(r[k]) for k, _, fmt in cols] for r in rows]
    widths = [max(len(row[j]) for row in cells) for j in range(len(cols))]
    lines = ["  ".join(c.ljust(w) if j == 1 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summarize_attention(
    model: Any,
    source: Any,
    layers: int | Iterable[int] | None = None,
    queries: Any = None,
    *,
    max_queries: int = 6,
    verbose: bool = False,
    **predict_kwargs: Any,
) -> list[dict]:
    """Per-layer attention statistics over the queries of every image in `source`; no images are written.

    Arguments are those of `collect_attention`. Each row: layer, module, heads, map (H x W of the layer's input),
    keys (key grid), queries (image-query pairs averaged over), distance_px (attention-weighted mean distance from
    the query to the keys, in original-image pixels), entropy (nats), norm_entropy (entropy / log(keys): 0 = one
    key, 1 = uniform), and head_distance_px / head_entropy per head. All are means over images, queries and heads.
    Printed as a table when `verbose`.
    """
    summary = _Summary()
    for rec in collect_attention(model, source, layers, queries, max_queries=max_queries, **predict_kwargs):
        summary.add(rec)
    rows = summary.rows()
    if verbose:
        print(format_summary(rows))
    return rows


# ---------------------------------------------------------------------------------------------- drawing
def _render(rec: ImageAttention, la: LayerAttention, path: Path, heads: bool, alpha: float, cmap: str) -> None:
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
    from ultralytics.utils.plotting import colors

    rgb = np.ascontiguousarray(rec.image[..., ::-1]) if rec.image.ndim == 3 else rec.image
    h0, w0 = rgb.shape[:2]
    Q, n_keys = len(rec.queries), la.key_hw[0] * la.key_hw[1]
    nrows = 1 + (la.heads if heads else 0)
    pw = min(max(w0 / 100, 2.6), 4.5)  # panel width, inches at 100 dpi: about the image's own resolution
    ph = pw * h0 / w0
    title, top, gap, margin = 0.62, 0.4, 0.12, 0.08  # inches: panel titles, figure title, between panels, edges
    fig_w, fig_h = pw * Q + gap * (Q - 1) + 2 * margin, (ph + title) * nrows + top + margin
    fig = Figure(figsize=(fig_w, fig_h), dpi=100)
    cmap_fn = matplotlib.colormaps[cmap]
    axes = fig.subplots(nrows, Q, squeeze=False)
    # Fixed layout in inches (tight_layout would draw the whole figure once more just to measure it).
    fig.subplots_adjust(left=margin / fig_w, right=1 - margin / fig_w, bottom=margin / fig_h,
                        top=1 - (top + title) / fig_h, wspace=gap / pw, hspace=title / ph)
    draw_boxes = rec.boxes[:50]
    for q in range(Q):
        for r in range(nrows):
            ax = axes[r, q]
            head = None if r == 0 else r - 1
            heat = rec.heatmap(la.index, q, head)
            w = la.weights[:, q].mean(0) if head is None else la.weights[head, q]
            ax.imshow(rgb, cmap="gray" if rgb.ndim == 2 else None)
            # Colour and opacity both follow weight / peak: low-attention pixels stay visible, a uniform map tints all.
            norm = heat / max(float(w.max()), 1e-12)
            rgba = cmap_fn(norm)
            rgba[..., 3] = alpha * np.sqrt(norm)
            ax.imshow(rgba, interpolation="nearest")
            for k, (x1, y1, x2, y2, conf, cls) in enumerate(draw_boxes):
                mine = rec.query_boxes[q] == k
                c = np.array(colors(int(cls))) / 255.0
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white" if mine else c,
                                       lw=2.0 if mine else 1.0))
                if mine or len(draw_boxes) <= 10:
                    ax.text(x1, y1, f"{rec.names.get(int(cls), int(cls))} {conf:.2f}", fontsize=6, color="white",
                            va="bottom", bbox=dict(fc=c, ec="none", pad=0.5, alpha=0.8))
            y, x = rec.queries[q]
            ax.plot([x], [y], marker="+", ms=9, mec="black", mew=2.6)
            ax.plot([x], [y], marker="+", ms=8, mec="white", mew=1.2)
            ax.set_xlim(0, w0)
            ax.set_ylim(h0, 0)
            ax.set_xticks([])
            ax.set_yticks([])
            d = la.distance[:, q].mean() if head is None else la.distance[head, q]
            e = la.entropy[:, q].mean() if head is None else la.entropy[head, q]
            ne = la.norm_entropy[:, q].mean() if head is None else la.norm_entropy[head, q]
            who = f"{rec.query_labels[q]}, mean of {la.heads} heads" if head is None else f"head {head}"
            ax.set_title(
                f"{who}\npeak {w.max():.3f} = {w.max() * n_keys:.1f}x uniform\n"
                f"dist {d:.0f} px, entropy {e:.2f} nats ({ne:.2f})",
                fontsize=7,
            )
    fig.suptitle(
        f"{Path(rec.path).name}: layer {la.index} {la.module}, {la.feature_hw[0]}x{la.feature_hw[1]} map, "
        f"{la.key_hw[0]}x{la.key_hw[1]} keys, stride {la.stride_yx[0]:g}",
        fontsize=9,
        y=1 - 0.1 / fig_h,
        va="top",
    )
    fig.savefig(path, dpi=100)


def visualize_attention(
    model: Any,
    source: Any,
    out_dir: str | Path,
    layers: int | Iterable[int] | None = None,
    queries: Any = None,
    *,
    heads: bool = False,
    max_queries: int = 6,
    alpha: float = 0.7,
    cmap: str = "jet",
    verbose: bool = True,
    **predict_kwargs: Any,
) -> list[Path]:
    """Save one PNG per (image, attention layer): the queries' attention as heat maps over the image, with boxes.

    Each PNG has one column per query (marked with a circle; its box drawn in white) and a row for the mean over
    heads, plus one row per head when `heads`. A key cell's weight is painted over every original-image pixel it
    covers; colours are scaled to each panel's peak, which the title gives with the distance and entropy.
    With `verbose`, the per-layer summary (see `summarize_attention`) is printed as a table.

    Args:
        model: Ultralytics YOLO object, or path to a ``.pt`` checkpoint.
        source: image path, folder, or anything `YOLO.predict` takes.
        out_dir: folder for the PNGs (created), named ``<image stem>_layer<index>.png``.
        layers: indices into ``model.model``; None = every SelfAttentionBlock.
        queries: (row, col) original-image pixels; None = centres of the detected boxes.
        heads: also draw every head.
        max_queries: most box-centre queries per image.
        alpha: heat-map opacity at the peak (opacity grows as the square root of weight / peak).
        cmap: matplotlib colour map.
        verbose: print the summary table.
        **predict_kwargs: passed to `YOLO.predict` (imgsz, conf, iou, classes, device="cpu").

    Returns:
        The written PNG paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary, paths, used = _Summary(), [], set()
    for rec in collect_attention(model, source, layers, queries, max_queries=max_queries, **predict_kwargs):
        summary.add(rec)
        stem = Path(rec.path).stem or "image"
        for la in rec.layers:
            name, n = f"{stem}_layer{la.index}", 1
            while name in used:
                n += 1
                name = f"{stem}_{n}_layer{la.index}"
            used.add(name)
            path = out / f"{name}.png"
            _render(rec, la, path, heads, alpha, cmap)
            paths.append(path)
    if verbose:
        print(format_summary(summary.rows()))
    return paths


# ---------------------------------------------------------------------------------------------- CLI
def _query_arg(text: str) -> tuple[float, float]:
    try:
        r, c = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL pixels, got {text!r}") from None
    return r, c


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m yolo_attn.visualize MODEL SOURCE --out DIR [--layer I ...] [--query ROW,COL ...] ...``."""
    p = argparse.ArgumentParser(
        prog="python -m yolo_attn.visualize",
        description="Save attention heat maps of an attention YOLO model over images, and print a per-layer summary.",
    )
    p.add_argument("model", help="Ultralytics .pt checkpoint of an attention model")
    p.add_argument("source", help="image, folder or glob")
    p.add_argument("--out", required=True, type=Path, help="output folder for the PNGs")
    p.add_argument("--layer", type=int, nargs="+", action="extend",
                   help="index into model.model of an attention layer (default: every SelfAttentionBlock)")
    p.add_argument("--query", type=_query_arg, nargs="+", action="extend", metavar="ROW,COL",
                   help="query pixel of the original image (default: centre of each detected box)")
    p.add_argument("--heads", action="store_true", help="also draw every head, not only their mean")
    p.add_argument("--max-queries", type=int, default=6, help="most box-centre queries per image (default 6)")
    p.add_argument("--imgsz", type=int, nargs="+", help="inference size (default: the model's)")
    p.add_argument("--conf", type=float, help="detection confidence threshold (default 0.25)")
    p.add_argument("--device", default="cpu", help="inference device (default cpu)")
    p.add_argument("--alpha", type=float, default=0.7, help="heat-map opacity at the peak (default 0.7)")
    a = p.parse_args(argv)
    kw: dict[str, Any] = {"device": a.device}
    if a.imgsz:
        kw["imgsz"] = a.imgsz[0] if len(a.imgsz) == 1 else a.imgsz
    if a.conf is not None:
        kw["conf"] = a.conf
    try:
        paths = visualize_attention(a.model, a.source, a.out, a.layer, a.query, heads=a.heads,
                                    max_queries=a.max_queries, alpha=a.alpha, **kw)
    except (ValueError, TypeError, FileNotFoundError) as e:
        p.error(str(e))
    print(f"{len(paths)} attention map(s) saved to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
