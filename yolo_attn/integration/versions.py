"""The Ultralytics versions yolo-attn is tested with, and the warning, once, when the running one is outside them.

`TESTED_RELEASES` is the one list: CI runs the Ultralytics-facing tests on each (the newest is the one
.ci/constraints.txt pins for the main run; `.ci/ultralytics-range` runs the others, each in its own venv), the
declared range starts at the oldest, and pyproject.toml's requirement must say the same (a test checks it).
This module imports nothing but the standard library, so the CI script can read it without torch.
"""

from __future__ import annotations

import re

TESTED_RELEASES = ("8.3.0", "8.4.0", "8.4.190")  # oldest (YOLO11's first release), a middle one, newest
_NEXT_MINOR = (8, 5, 0)  # excluded: a new minor release may change parse_model or the heads


def _release(version: str) -> tuple[int, ...]:
    """Leading numeric release parts: '8.4.190.post1' -> (8, 4, 190), '8.5.0rc1' -> (8, 5, 0)."""
    parts = []
    for p in version.split("."):
        m = re.match(r"\d+", p)
        if not m:
            break
        parts.append(int(m.group()))
        if m.group() != p:
            break
    return tuple(parts)


TESTED_ULTRALYTICS = (min(map(_release, TESTED_RELEASES)), _NEXT_MINOR)  # [low, high)


def tested_range() -> str:
    """The tested Ultralytics versions as a pip specifier, e.g. '>=8.3.0,<8.5.0'."""
    low, high = TESTED_ULTRALYTICS
    return f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"


def in_tested_range(version: str) -> bool:
    """Whether an Ultralytics version string lies in the tested range (a pre-release of the upper bound does not)."""
    low, high = TESTED_ULTRALYTICS
    return low <= _release(version) < high


def _check_version() -> None:
    import ultralytics
    from ultralytics.utils import LOGGER

    if not in_tested_range(ultralytics.__version__):
        LOGGER.warning(
            f"yolo-attn {_plugin_version()} is tested with ultralytics{tested_range()}; "
            f"found {ultralytics.__version__}. Layers may fail to build."
        )


def _plugin_version() -> str:
    from .. import __version__

    return __version__
