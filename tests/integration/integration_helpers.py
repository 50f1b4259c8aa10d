"""Helpers of the integration tests: config paths, tiny training arguments, tiny model dicts, fresh processes.

(pytest puts tests/integration/ on sys.path, so test modules here import this one by name.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
TRAIN_ARGS = dict(epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, amp=False, seed=0)


def run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a command in a fresh process; fail with its output on a non-zero exit."""
    full_env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false", **(env or {})}
    p = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def yolo_cli() -> str:
    return str(Path(sys.executable).with_name("yolo"))


def tiny_cfg(name: str, args: list, width: int = 32, repeats: int = 1) -> dict:
    """A three-conv detector whose row 3 is `[-1, repeats, name, args]` (8x downsampled: 32x32 at the stride probe)."""
    backbone = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [width, 3, 2]]]
    return {"nc": 2, "backbone": [*backbone, [-1, repeats, name, args]], "head": [[[3], 1, "Detect", ["nc"]]]}


def python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (which runs the start-up hook), offline and never pip-installing."""
    full = {k: v for k, v in os.environ.items() if k not in {"YOLO_ATTN_AUTOLOAD", "ULTRALYTICS_SAFE_LOAD"}}
    full.update(YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false", **env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )
