"""The residual attention block that model YAMLs insert into a detector."""

from __future__ import annotations

import torch
import torch.nn as nn

from .checks import check_channels, check_choice, check_float, check_int
from .attention2d import Attention2d

# type -> (reduction, kv stride): what each attention type means, as presets of one implementation.
ATTENTION_TYPES = {
    "standard": (1, 1),  # every pixel attends to every pixel, full width
    "spatial": (2, 1),  # every pixel, q/k/v at half width
    "efficient": (1, 2),  # keys/values from the map pooled 2x2
}


class SelfAttentionBlock(nn.Module):
    """Pre-norm residual self-attention, `x + attn(norm(x))`, an exact identity when inserted.

    The attention's output projection starts at zero, so adding this block to a trained network leaves that
    network's outputs unchanged until fine-tuning moves it. The projection's weight still gets a gradient at the
    zero start (it multiplies a non-zero attention output), so the block cannot get stuck there, with or without
    weight decay. Output channels equal input channels.

    The projections have no biases: a key bias cannot change a softmax, a value bias passes through it as a constant,
    a constant added to the output is what the next BatchNorm removes, and the one that could matter, a query bias
    (a learned prior over keys), made no measurable accuracy difference (docs/benchmarks.md). Dropping them saves a
    cast, a gradient reduction and an accumulation per bias in every training step.

    Positional signature (a YAML row gives everything after c1, which Ultralytics' channel bookkeeping fills in):
    `SelfAttentionBlock(c1, type="standard", head_dim=32, reduction=None, scale=None, pos=True, kv_tokens=0,
    attn_drop=0.0)`.

    Args:
        c1 (int): channels C in and out.
        type (str): "standard" (global), "spatial" (q/k/v at c1/2 channels) or "efficient" (keys/values pooled 2x).
        head_dim (int): channels per head; heads = attention channels / head_dim, so heads grow with model width.
        reduction (int | None): q/k/v channels are c1 / reduction; None takes the type's default.
        scale (int | None): key/value pooling factor; None takes the type's default.
        pos (bool): add a 2-D sine-cosine position encoding to the attention's input.
        kv_tokens (int): if > 0, cap keys/values at this many (cost linear in pixels at any image size).
        attn_drop (float): dropout on attention weights (training only).

    Shapes: (B, C, H, W) -> (B, C, H, W).

    Examples:
        >>> block = SelfAttentionBlock(64, "efficient")
        >>> x = torch.randn(2, 64, 13, 17)
        >>> bool((block(x) == x).all())  # identity at insertion
        True
    """

    def __init__(
        self,
        c1: int,
        type: str = "standard",
        head_dim: int = 32,
        reduction: int | None = None,
        scale: int | None = None,
        pos: bool = True,
        kv_tokens: int = 0,
        attn_drop: float = 0.0,
    ):
        super().__init__()
        name = "SelfAttentionBlock"
        self.c1 = check_int(name, "c1 (input channels)", c1)
        # Not `self.type`: Ultralytics writes its own `.type`, `.i`, `.f` and `.np` onto every layer it builds.
        self.attn_type = check_choice(name, "type", type, ATTENTION_TYPES)
        default_reduction, default_scale = ATTENTION_TYPES[type]
        self.norm = nn.BatchNorm2d(c1)
        try:
            self.attn = Attention2d(
                c1,
                c1,
                head_dim=head_dim,
                reduction=default_reduction if reduction is None else reduction,
                kv_stride=default_scale if scale is None else scale,
                kv_tokens=check_int(name, "kv_tokens", kv_tokens, minimum=0),
                pos=pos,
                attn_drop=check_float(name, "attn_drop", attn_drop),
                qkv_bias=False,
                proj_bias=False,
            )
        except (TypeError, ValueError) as e:  # name the layer the user wrote, not its inner implementation
            raise e.__class__(str(e).replace("Attention2d:", f"{name}:", 1)) from None  # `type` is an argument here
        nn.init.zeros_(self.attn.proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_channels("SelfAttentionBlock", x.shape[1], self.c1)  # here: BatchNorm would fail first, naming no layer
        if self.norm is None:  # fused: the norm is folded into the attention's input pass
            return self.attn(x, shortcut=x)
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:  # BatchNorm's own error names no layer
            raise ValueError(
                "SelfAttentionBlock: training needs more than one value per channel for BatchNorm, got batch 1 of a "
                "1x1 map; use a batch > 1 or a larger image, or call .eval()."
            )
        return self.attn(self.norm(x), shortcut=x)  # x + attn(norm(x)), the add done by the output product where it can

    def fuse(self) -> SelfAttentionBlock:
        """Fold the BatchNorm into the attention's position pass, for inference; returns self.

        As Ultralytics folds each Conv's BatchNorm (`model.fuse()`, which calls this too): one elementwise pass
        and two kernels fewer per block. The folded norm no longer trains or updates its statistics.
        """
        if self.norm is not None:
            self.attn.fuse_input_norm(self.norm)
            self.norm = None
        return self

    def extra_repr(self) -> str:
        a = self.attn
        return f"{self.c1}, type={self.attn_type!r}, heads={a.num_heads}x{a.head_dim}, kv_stride={a.kv_stride}"
