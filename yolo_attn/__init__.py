"""yolo-attn: fast, exportable self-attention layers for Ultralytics YOLO.

The layers are plain PyTorch; importing this package does not import Ultralytics. It arms a cheap import hook
(see `yolo_attn_autoload`) so the layers are registered with Ultralytics whenever Ultralytics loads.
"""

from .attention import SelfAttention, attend
from .attention2d import Attention2d, EfficientSelfAttention, SpatialSelfAttention
from .block import SelfAttentionBlock
from .pos_embed import PositionalEncoding, PositionalEncoding2d, build_sincos1d_pos_embed, build_sincos2d_pos_embed
from .transformer import TransformerEncoder, TransformerEncoderLayer

__version__ = "0.1.0"

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


def _arm() -> None:
    """Register with Ultralytics now if it is loaded, else when it loads: importing yolo_attn opts in."""
    import sys

    if "ultralytics.nn.tasks" in sys.modules:
        from .integration import register

        register()
    else:
        try:
            import yolo_attn_autoload
        except ImportError:  # running from a source tree that was never installed
            return
        yolo_attn_autoload.install(force=True)


_arm()
