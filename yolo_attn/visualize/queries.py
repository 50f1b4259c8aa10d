"""The query maths: the letterbox between original image and network input, the key cells a query sees, one
layer's attention for chosen query pixels, and the records that hold the results."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from yolo_attn import Attention2d
from yolo_attn.layers.pooling import kv_pool_factor


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
