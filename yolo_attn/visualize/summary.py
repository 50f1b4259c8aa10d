"""The per-layer summary: how far and how widely each layer's queries look, as rows and as a printed table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .collect import collect_attention
from .queries import ImageAttention

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
