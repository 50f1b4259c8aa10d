"""Shared fixtures: tests run on CPU, seeded, offline."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("YOLO_OFFLINE", "1")  # Ultralytics: no network checks
os.environ.setdefault("YOLO_AUTOINSTALL", "false")  # never pip-install a missing module named by a checkpoint


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
