"""Pre-norm transformer encoder layer and encoder, for sequences or feature maps."""

from __future__ import annotations

import torch
import torch.nn as nn

from .checks import check_channels, check_choice, check_float, check_int
from .attention import SelfAttention

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def _to_tokens(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...] | None]:
    """(B, C, H, W) -> (B, H*W, C) plus the shape to restore; (B, N, C) passes through."""
    if x.ndim == 4:
        return x.flatten(2).transpose(1, 2), x.shape
    return x, None


def _check_channels(layer: str, tokens: torch.Tensor, norm: nn.LayerNorm) -> None:
    """Raise a ValueError naming `layer` if (B, N, C) `tokens` do not have the channels `norm` was built for."""
    check_channels(layer, tokens.shape[-1], norm.normalized_shape[0], name="d_model")


def _from_tokens(x: torch.Tensor, shape: tuple[int, ...] | None) -> torch.Tensor:
    if shape is None:
        return x
    B, C, H, W = shape
    return x.transpose(1, 2).reshape(B, C, H, W)


class TransformerEncoderLayer(nn.Module):
    """Pre-norm encoder layer: `x + attn(norm1(x))`, then `x + ffn(norm2(x))`.

    Accepts tokens (B, N, C) or a feature map (B, C, H, W), which it treats as H*W tokens.

    Positional signature: `TransformerEncoderLayer(d_model, nhead=8, dim_feedforward=2048, dropout=0.1,
    activation="relu")`.

    Args:
        d_model (int): channels C.
        nhead (int): attention heads, dividing d_model.
        dim_feedforward (int): hidden width of the feed-forward network.
        dropout (float): dropout on attention weights and after each residual branch (training only).
        activation (str): "relu", "gelu" or "silu".

    Shapes: (B, N, C) -> (B, N, C), or (B, C, H, W) -> (B, C, H, W).

    Examples:
        >>> layer = TransformerEncoderLayer(64, 2, 128)
        >>> layer(torch.randn(2, 64, 5, 7)).shape
        torch.Size([2, 64, 5, 7])
    """

    def __init__(self, d_model: int, nhead: int = 8, dim_feedforward: int = 2048, dropout: float = 0.1, activation: str = "relu"):
        super().__init__()
        name = "TransformerEncoderLayer"
        dropout = check_float(name, "dropout", dropout)
        act = ACTIVATIONS[check_choice(name, "activation", activation, ACTIVATIONS)]
        # Checked here, in this layer's words: SelfAttention would name itself and its own `dim`, `num_heads`.
        d_model, nhead = check_int(name, "d_model", d_model), check_int(name, "nhead", nhead)
        if d_model % nhead:
            raise ValueError(f"{name}: d_model {d_model} is not divisible by nhead {nhead}; pick nhead dividing {d_model}.")
        self.self_attn = SelfAttention(d_model, num_heads=nhead, attn_drop=dropout, proj_drop=dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, check_int(name, "dim_feedforward", dim_feedforward)),
            act(),  # a module, not a function attribute: pickles under Ultralytics' safe loader
            nn.Dropout(dropout),
            nn.Linear(dim_feedforward, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, shape = _to_tokens(x)  # (B, N, C)
        _check_channels("TransformerEncoderLayer", x, self.norm1)  # LayerNorm would fail first, naming no layer
        x = x + self.self_attn(self.norm1(x))
        x = x + self.ffn(self.norm2(x))
        return _from_tokens(x, shape)


class TransformerEncoder(nn.Module):
    """A stack of `TransformerEncoderLayer` and a final LayerNorm.

    Positional signature: `TransformerEncoder(d_model, nhead=8, num_layers=1, dim_feedforward=2048, dropout=0.1,
    activation="relu")`.

    Args:
        d_model (int): channels C.
        nhead (int): attention heads, dividing d_model.
        num_layers (int): number of encoder layers.
        dim_feedforward (int): hidden width of each feed-forward network.
        dropout (float): dropout rate (training only).
        activation (str): "relu", "gelu" or "silu".

    Shapes: (B, N, C) -> (B, N, C), or (B, C, H, W) -> (B, C, H, W).

    Examples:
        >>> enc = TransformerEncoder(64, 2, 2, 128)
        >>> enc(torch.randn(2, 10, 64)).shape
        torch.Size([2, 10, 64])
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 8,
        num_layers: int = 1,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
    ):
        super().__init__()
        num_layers = check_int("TransformerEncoder", "num_layers", num_layers)
        try:
            self.layers = nn.ModuleList(
                TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation) for _ in range(num_layers)
            )
        except (TypeError, ValueError) as e:  # name the layer the user wrote, not the one it stacks
            raise e.__class__(str(e).replace("TransformerEncoderLayer:", "TransformerEncoder:", 1)) from None
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, shape = _to_tokens(x)  # (B, N, C)
        _check_channels("TransformerEncoder", x, self.norm)
        for layer in self.layers:
            x = layer(x)
        return _from_tokens(self.norm(x), shape)
