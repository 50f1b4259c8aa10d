"""Measure what the yolo-attn start-up hook costs every Python process.

Creates a throw-away venv (no system site-packages, so nothing else's ``.pth``
files add noise), times ``python -c pass`` in it, then copies in the three
files a wheel puts at the site-packages root (``yolo_attn-autoload.pth``,
``yolo_attn-autoload.start``, ``yolo_attn_autoload.py``) and times it again,
with auto-loading on and with ``YOLO_ATTN_AUTOLOAD=0``.  Runs are interleaved
so drift in machine load hits every variant alike.

Usage::

    python scripts/startup_cost.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOK_FILES = ("yolo_attn-autoload.pth", "yolo_attn-autoload.start", "yolo_attn_autoload.py")
PROBE = "import sys; print(len(sys.modules), 'torch' in sys.modules or 'ultralytics' in sys.modules)"


def _wall_ms(python: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(python), "-c", "pass"], env=env, check=True)
    return (time.perf_counter() - t0) * 1e3


def _hook_import_us(python: Path, env: dict[str, str]) -> int | None:
    """Cumulative ``-X importtime`` of the hook module, or None if it was not imported."""
    err = subprocess.run(
        [str(python), "-X", "importtime", "-c", "pass"], env=env, capture_output=True, text=True, check=True
    ).stderr
    m = re.search(r"^import time:\s+\d+ \|\s+(\d+) \|\s+yolo_attn_autoload$", err, re.MULTILINE)
    return int(m.group(1)) if m else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per variant (median reported)")
    args = parser.parse_args()

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "YOLO_ATTN_AUTOLOAD"}
    with tempfile.TemporaryDirectory(prefix="yolo-attn-startup-") as tmp:
        venvs = {name: Path(tmp, name) for name in ("without", "with")}
        for root in venvs.values():
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        site = Path(
            subprocess.run(
                [str(venvs["with"] / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        for name in HOOK_FILES:
            shutil.copy(REPO / name, site / name)

        variants = {
            "no hook (baseline)": (venvs["without"] / "bin" / "python", base_env),
            "hook installed": (venvs["with"] / "bin" / "python", base_env),
            "hook, YOLO_ATTN_AUTOLOAD=0": (venvs["with"] / "bin" / "python", {**base_env, "YOLO_ATTN_AUTOLOAD": "0"}),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for name, (py, env) in variants.items():  # warm the page cache and .pyc files
            _wall_ms(py, env)
        for _ in range(args.runs):
            for name, (py, env) in variants.items():
                times[name].append(_wall_ms(py, env))

        base = statistics.median(times["no hook (baseline)"])
        print(f"Python {sys.version.split()[0]}, {args.runs} runs of `python -c pass` per variant\n")
        print(
            f"{'variant':<28} {'median ms':>9} {'min ms':>7} {'delta ms':>8} {'modules':>7} {'hook import us':>14}  torch/ultralytics loaded"
        )
        for name, (py, env) in variants.items():
            med = statistics.median(times[name])
            n_mods, heavy = subprocess.run(
                [str(py), "-c", PROBE], env=env, capture_output=True, text=True, check=True
            ).stdout.split()
            imports = [us for us in (_hook_import_us(py, env) for _ in range(5)) if us is not None]
            imp_s = f"{statistics.median(imports):.0f}" if imports else "-"
            print(f"{name:<28} {med:9.2f} {min(times[name]):7.2f} {med - base:+8.2f} {n_mods:>7} {imp_s:>14}  {heavy}")


if __name__ == "__main__":
    main()
