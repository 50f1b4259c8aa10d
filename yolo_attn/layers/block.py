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

MAX_MLP_RATIO = 16.0  # exclusive bound on the feed-forward width, in channels: transformers use 2-4


class SelfAttentionBlock(nn.Module):
    """Pre-norm residual self-attention, `x + attn(norm(x))`, optionally followed by a feed-forward network as in a
    transformer layer, `y + ffn(norm2(y))`; an exact identity when inserted.

    The attention's output projection starts at zero, so adding this block to a trained network leaves that
    network's outputs unchanged until fine-tuning moves it. The projection's weight still gets a gradient at the
    zero start (it multiplies a non-zero attention output), so the block cannot get stuck there, with or without
    weight decay. The feed-forward network's last 1x1 convolution starts at zero for the same reason. Output channels
    equal input channels.

    The projections have no biases: a key bias cannot change a softmax, a value bias passes through it as a constant,
    a constant added to the output is what the next BatchNorm removes, and the one that could matter, a query bias
    (a learned prior over keys), made no measurable accuracy difference (docs/benchmarks.md). Dropping them saves a
    cast, a gradient reduction and an accumulation per bias in every training step.

    Positional signature (a YAML row gives everything after c1, which Ultralytics' channel bookkeeping fills in):
    `SelfAttentionBlock(c1, type="standard", head_dim=32, reduction=None, scale=None, pos=True, kv_tokens=0,
    attn_drop=0.0, mlp_ratio=0.0)`.

    Args:
        c1 (int): channels C in and out.
        type (str): "standard" (global), "spatial" (q/k/v at c1/2 channels) or "efficient" (keys/values pooled 2x).
        head_dim (int): channels per head; heads = attention channels / head_dim, so heads grow with model width.
        reduction (int | None): q/k/v channels are c1 / reduction; None takes the type's default.
        scale (int | None): key/value pooling factor; None takes the type's default.
        pos (bool): add a 2-D sine-cosine position encoding to the attention's input.
        kv_tokens (int): if > 0, cap keys/values at this many (cost linear in pixels at any image size).
        attn_drop (float): dropout on attention weights (training only).
        mlp_ratio (float): if > 0, add the feed-forward network, 1x1 conv to round(c1 * mlp_ratio) channels, SiLU,
            1x1 conv back to c1; 0 is attention alone. In [0, 16).

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
        mlp_ratio: float = 0.0,
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
        self.mlp_ratio = check_float(name, "mlp_ratio", mlp_ratio, high=MAX_MLP_RATIO)
        self.register_module("ffn", None)
        if self.mlp_ratio > 0:
            hidden = max(round(c1 * self.mlp_ratio), 1)
            self.ffn = nn.Sequential(
                nn.BatchNorm2d(c1), nn.Conv2d(c1, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, c1, 1, bias=False)
            )
            nn.init.zeros_(self.ffn[3].weight)

    def __setstate__(self, state: dict) -> None:
        """Blocks pickled before the feed-forward option existed load as attention alone."""
        super().__setstate__(state)
        self._modules.setdefault("ffn", None)
        self.__dict__.setdefault("mlp_ratio", 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_channels("SelfAttentionBlock", x.shape[1], self.c1)  # here: BatchNorm would fail first, naming no layer
        if self.norm is None:  # fused: the norm is folded into the attention's input pass
            return self.feed_forward(self.attn(x, shortcut=x))
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:  # BatchNorm's own error names no layer
            raise ValueError(
                "SelfAttentionBlock: training needs more than one value per channel for BatchNorm, got batch 1 of a "
                "1x1 map; use a batch > 1 or a larger image, or call .eval()."
            )
        y = self.attn(self.norm(x), shortcut=x)  # x + attn(norm(x)), the add done by the output product where it can
        return self.feed_forward(y)

    def feed_forward(self, y: torch.Tensor) -> torch.Tensor:
        """`y + ffn(norm2(y))`, or `y` when the block has no feed-forward network."""
        return y if self.ffn is None else y + self.ffn(y)

    def fuse(self) -> SelfAttentionBlock:
        """Fold the BatchNorm into the attention's position pass, and the feed-forward network's into its first conv,
        for inference; returns self.

        As Ultralytics folds each Conv's BatchNorm (`model.fuse()`, which calls this too): one elementwise pass
        and two kernels fewer per block. The folded norm no longer trains or updates its statistics.
        """
        if self.norm is not None:
            self.attn.fuse_input_norm(self.norm)
            self.norm = None
        if self.ffn is not None and isinstance(self.ffn[0], nn.BatchNorm2d):
            self.ffn[1] = fold_input_norm(self.ffn[0], self.ffn[1])
            self.ffn[0] = nn.Identity()
        return self

    def extra_repr(self) -> str:
        a = self.attn
        ffn = f", mlp_ratio={self.mlp_ratio:g}" if self.ffn is not None else ""
        return f"{self.c1}, type={self.attn_type!r}, heads={a.num_heads}x{a.head_dim}, kv_stride={a.kv_stride}{ffn}"


@torch.no_grad()
def fold_input_norm(norm: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """Return a 1x1 conv equal to `conv(norm(x))` with `norm` in inference mode: the norm folded into its weights."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # per input channel
    shift = norm.bias - norm.running_mean * scale
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=True).to(conv.weight)
    w = conv.weight[:, :, 0, 0]
    fused.weight.copy_((w * scale)[:, :, None, None])
    fused.bias.copy_(w @ shift + (conv.bias if conv.bias is not None else 0))
    return fused.requires_grad_(False)
