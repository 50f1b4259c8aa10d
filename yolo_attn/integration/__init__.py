"""All coupling with Ultralytics lives here: the layers themselves never import it.

`register()` teaches a running Ultralytics, once per process:
1. YAML names (`yaml_rows.py`): each registered layer is bound where `parse_model` looks names up; one wrapper
   of `parse_model` (`yolo_attn_autoload.wrap_parse_model`) names the row of an error, and suggests our layer for
   a misspelled name.
2. Safe loading, configs by name, exact FLOPs, inference fusing, the cls set by name (`patches.py`).
3. Warm start (`warm_start.py`): `BaseModel.load` maps a plain checkpoint's layers around the inserted rows.
4. A warning, once, when the Ultralytics version is outside the tested range (`versions.py`).
Importing this package does not import Ultralytics; `register()` does.
"""

from __future__ import annotations

import threading
from pathlib import Path

from yolo_attn_autoload import wrap_parse_model

from . import registry  # noqa: F401  yolo_attn.integration.registry, public
from .patches import (  # noqa: F401  public names of 0.1.0's yolo_attn.integration
    _allow_safe_load,
    _install_cls_dataset,
    _install_config_search,
    _install_exact_flops,
    _install_fuse,
    packaged_config,
    plugin_classes,
    safe_load_names,
)
from .versions import (  # noqa: F401
    TESTED_RELEASES,
    TESTED_ULTRALYTICS,
    _check_version,
    in_tested_range,
    tested_range,
)
from .warm_start import _install_warm_start
from .yaml_rows import _bind_names

CONFIG_DIR = Path(__file__).parents[1] / "configs"

_lock = threading.Lock()
_registered = False


def register() -> None:
    """Register the yolo-attn layers with Ultralytics; safe to call many times and from many threads."""
    global _registered
    if _registered:
        return
    # Imported outside the lock: a first import of it runs the auto-loader, which calls register() itself.
    import ultralytics.nn.tasks as tasks

    with _lock:
        if _registered:
            return
        _bind_names(tasks)
        wrap_parse_model(tasks)  # row errors, typos of our names: one wrapper, shared with the off-hint
        _allow_safe_load(tasks)
        _install_config_search()
        _install_cls_dataset()
        _install_exact_flops()
        _install_warm_start(tasks)
        _install_fuse(tasks)
        _check_version()
        _registered = True
