"""The tested Ultralytics releases are one list (`versions.TESTED_RELEASES`): the declared range, pyproject's
requirement, the main run's pin and the range script's default all follow it."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from yolo_attn.integration import versions
from yolo_attn.integration.versions import TESTED_RELEASES, TESTED_ULTRALYTICS, _release, in_tested_range

REPO = Path(__file__).resolve().parents[2]


def test_releases_span_the_range_oldest_first():
    releases = [_release(v) for v in TESTED_RELEASES]
    assert len(releases) >= 3 and releases == sorted(set(releases))  # oldest, at least one middle, newest
    assert TESTED_ULTRALYTICS[0] == releases[0] and all(in_tested_range(v) for v in TESTED_RELEASES)
    assert {r[:2] for r in releases} >= {(8, 3), (8, 4)}  # both minor lines users have


def test_pyproject_requires_the_tested_range():
    text = (REPO / "pyproject.toml").read_text()
    (spec,) = re.findall(r'"ultralytics([^"]*)"', text)
    assert spec == versions.tested_range()


def test_main_run_pins_the_newest():
    pins = dict(re.findall(r"(?m)^([\w-]+)==(\S+)", (REPO / ".ci" / "constraints.txt").read_text()))
    assert pins["ultralytics"] == TESTED_RELEASES[-1]


@pytest.mark.parametrize("version, inside", [("8.2.103", False), ("8.3.0", True), ("8.4.190.post1", True),
                                             ("8.5.0rc1", False), ("8.5.0", False)])
def test_in_tested_range(version, inside):
    assert in_tested_range(version) is inside


def test_range_script_defaults_to_the_other_releases():
    """The script's version list, cut before it installs anything: every tested release but the running one."""
    script = REPO / ".ci" / "ultralytics-range"
    head = script.read_text().split("export PYTHONPATH=", 1)[0]  # argument handling and the default list only
    code = head + 'printf "%s\\n" "${versions[@]}"\n'
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(["bash", "-c", code, str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    running = importlib.metadata.version("ultralytics")
    assert out.stdout.split() == [v for v in TESTED_RELEASES if v != running]
