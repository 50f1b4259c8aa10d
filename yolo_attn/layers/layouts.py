"""The two layouts the products of `Attention2d` run in, each complete: (B, H, W, C) tokens, and channels-first maps.

Token path (training, compiling, export, small maps): the map is laid out as contiguous tokens and projected by
`project`. Channels-first path (eager inference on large channels-first maps): the products read the map
transposed (`rows_of_map`) and write the output channels-first (`map_of_rows`), so no layout pass runs.
`switches.route` picks one per call; these functions only compute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def project(tokens: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, graph: bool = False) -> torch.Tensor:
    """`F.linear` over the channels of (B, H, W, C) tokens -> (B, H, W, out).

    Eagerly (`graph=False`) the product runs as a 1x1 convolution of the channels-last map the tokens already are:
    the same arithmetic as a GEMM, at a lower host cost per call, and eager training steps and small-batch inference
    are bound by host time. While compiling or tracing (`graph=True`) it is the plain GEMM: exported as MatMul, and
    what torch.compile handles best.
    """
    if graph:
        return F.linear(tokens, weight, bias)
    w = weight.view(*weight.shape, 1, 1)  # (out, C, 1, 1), a view: the weight's gradient stays a plain matrix
    return F.conv2d(tokens.permute(0, 3, 1, 2), w, bias).permute(0, 2, 3, 1)


def rows_of_map(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Project a channels-first (B, C, H, W) map to (B, H*W, out) rows: one batched product, no layout pass.

    The map is read as the transposed operand of the product (pixels along its contiguous axis), and the weight is
    broadcast over the batch with stride 0, not copied. `torch.bmm`, not `F.linear`: `F.linear` copies a
    non-contiguous 3-D input to fold it into one 2-D product whenever the weight requires grad.
    """
    B, C, H, W = x.shape
    rows = x.view(B, C, H * W).transpose(1, 2)  # (B, N, C), a view
    w = weight.t().expand(B, -1, -1)  # (B, C, out), a view
    return torch.bmm(rows, w) if bias is None else torch.baddbmm(bias, rows, w)


def map_of_rows(rows: torch.Tensor, weight: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
    """Project (B, N, D) rows to a channels-first (B, out, N) map, plus `base` (broadcast to it) in the product.

    The rows are read transposed, so the result is written channels-first directly; `base` (the block's shortcut,
    a bias, or both) is added by the product itself (`baddbmm`), not by a separate pass over the output.
    """
    w = weight.expand(len(rows), -1, -1)  # (B, out, D), a view
    cols = rows.transpose(1, 2)  # (B, D, N), a view
    return torch.bmm(w, cols) if base is None else torch.baddbmm(base, w, cols)
