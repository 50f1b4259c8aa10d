"""The layers: plain PyTorch, nothing outside this folder (no Ultralytics).

A model YAML names the layers listed in `yolo_attn_autoload.LAYERS`; `yolo_attn.integration` teaches Ultralytics
those names.
"""

from .attention import SelfAttention, attend
from .attention2d import Attention2d, EfficientSelfAttention, SpatialSelfAttention
from .block import SelfAttentionBlock
from .pos_embed import PositionalEncoding, PositionalEncoding2d, build_sincos1d_pos_embed, build_sincos2d_pos_embed
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "Attention2d",
    "EfficientSelfAttention",
    "PositionalEncoding",
    "PositionalEncoding2d",
    "SelfAttention",
    "SelfAttentionBlock",
    "SpatialSelfAttention",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "attend",
    "build_sincos1d_pos_embed",
    "build_sincos2d_pos_embed",
]
