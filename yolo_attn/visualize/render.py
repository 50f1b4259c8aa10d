"""Rendering: one PNG per image and layer, each key cell's weight painted over the original pixels it covers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .collect import collect_attention
from .queries import ImageAttention, LayerAttention
from .summary import _Summary, format_summary

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
