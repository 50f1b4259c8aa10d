"""yolo-attn: fast, exportable self-attention layers for Ultralytics YOLO.

Two wings: `yolo_attn.layers`, the layers in plain PyTorch, and `yolo_attn.integration`, the only code that talks
to Ultralytics. Importing this package does not import Ultralytics. It makes the module paths of 0.1.0 aliases of
their new homes (checkpoints pickled them), and arms a cheap import hook (`yolo_attn_autoload`) so the layers are
registered with Ultralytics whenever Ultralytics loads.
"""

import importlib as _importlib
import sys as _sys

import yolo_attn_autoload as _autoload

from .layers import (
    Attention2d,
    EfficientSelfAttention,
    PositionalEncoding,
    PositionalEncoding2d,
    SelfAttention,
    SelfAttentionBlock,
    SpatialSelfAttention,
    TransformerEncoder,
    TransformerEncoderLayer,
    attend,
    build_sincos1d_pos_embed,
    build_sincos2d_pos_embed,
)

__version__ = "0.1.0"

# The layer classes of the one list, and the layers' public functions.
__all__ = sorted([*_autoload.LAYERS, "attend", "build_sincos1d_pos_embed", "build_sincos2d_pos_embed"])


def _alias_legacy_modules() -> None:
    """Make each 0.1.0 module path (`yolo_attn.block`, ...) name its new module, for pickles and old imports."""
    package = _sys.modules[__name__]
    for old, new in _autoload.LEGACY_MODULES.items():
        module = _importlib.import_module(new)
        _sys.modules.setdefault(old, module)
        setattr(package, old.rpartition(".")[2], module)


def _arm() -> None:
    """Register with Ultralytics now if it is loaded, else when it loads: importing yolo_attn opts in."""
    if "ultralytics.nn.tasks" in _sys.modules:
        from .integration import register

        register()
    else:
        _autoload.install(force=True)


_alias_legacy_modules()
_arm()
