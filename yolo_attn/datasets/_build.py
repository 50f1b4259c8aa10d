"""The build machinery every generated dataset shares: seeding, threads, atomic temp-dir + marker + rename.

A build renders into a sibling temp directory of ``root`` and renames it into place only when complete, with a
marker file (:data:`MARKER`) recording its parameters; a complete build with the same parameters is skipped, a
directory not built here is never overwritten. What is drawn (a renderer) and how a sample lands on disk (a
:class:`Layout`) are separate, so other label formats (class folders, polygon or keypoint lines) reuse this file.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ..layers.checks import check_int

MARKER = "attn_dataset.json"
DATA_YAML = "data.yaml"
# Bump whenever what a build writes changes, so stale builds are regenerated instead of silently reused.
# 2: every build also writes data.yaml into its root.
VERSION = 2
JPEG_QUALITY = 90

Box = tuple[int, float, float, float, float]  # class, x1, y1, x2, y2 in pixels
# render(rng, side, index) -> (uint8 BGR image, label object understood by the layout)
Renderer = Callable[[np.random.Generator, int, int], tuple[np.ndarray, Any]]


class Layout(Protocol):
    """Where one rendered sample goes on disk; ``label`` is whatever the renderer returns beside the image."""

    def prepare(self, root: Path, split: str) -> None:
        """Create the directories of ``split`` under ``root``."""

    def write(self, root: Path, split: str, stem: str, jpeg: bytes, label: Any, side: int) -> None:
        """Write one encoded image and its label."""


def detect_lines(boxes: Sequence[Box], side: int) -> list[str]:
    """Pixel boxes -> YOLO detection label lines ``class cx cy w h`` normalised to [0, 1]."""
    lines = []
    for cls, x1, y1, x2, y2 in boxes:
        x1, y1, x2, y2 = (min(max(v / side, 0.0), 1.0) for v in (x1, y1, x2, y2))
        lines.append(f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}\n")
    return lines


class DetectLayout:
    """``images/{split}/{stem}.jpg`` + ``labels/{split}/{stem}.txt``; the label is a list of :data:`Box`."""

    def prepare(self, root: Path, split: str) -> None:
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)

    def write(self, root: Path, split: str, stem: str, jpeg: bytes, label: Sequence[Box], side: int) -> None:
        (root / "images" / split / f"{stem}.jpg").write_bytes(jpeg)
        (root / "labels" / split / f"{stem}.txt").write_text("".join(detect_lines(label, side)))


def read_marker(root: Path) -> dict | None:
    """The parameters a complete build recorded in ``root``, or None."""
    try:
        return json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """Cores this process may run on, not os.cpu_count(): containers and taskset often allow fewer."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def data_yaml_text(names: Sequence[str], comment: str = "", extra: str = "") -> str:
    """A data YAML without ``path`` (Ultralytics then takes the YAML's own folder as the root); ``extra``: more
    top-level lines, e.g. a pose set's ``kpt_shape``."""
    head = "".join(f"# {line}\n" if line else "#\n" for line in comment.splitlines())
    body = "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    return f"{head}train: images/train\nval: images/val\n{extra}\nnames:\n{body}"


def build_dataset(
    kind: str,
    root: str | os.PathLike,
    n_train: int,
    n_val: int,
    imgsz: int,
    seed: int,
    workers: int | None,
    render: Renderer,
    extra: dict,
    names: Sequence[str] | None = None,
    layout: Layout | None = None,
    who: str | None = None,
    yaml_extra: str = "",
) -> Path:
    """Render a dataset into a temp sibling of ``root`` and rename it into place.

    Args:
        kind: Dataset name stored in the marker and mixed into the per-image seed.
        root: Destination directory.
        n_train: Number of training images.
        n_val: Number of validation images.
        imgsz: Square image side in pixels (>= 64).
        seed: Base seed; same seed gives byte-identical files for a given OpenCV build.
        workers: Rendering threads (None: min(4, usable cores)). Output does not depend on it.
        render: ``render(rng, side, index) -> (uint8 BGR image, label)``.
        extra: Extra generator parameters recorded in the marker.
        names: Class names; when given, ``root/data.yaml`` is written for ``yolo train data=root/data.yaml``.
        layout: How samples land on disk (default :class:`DetectLayout`).
        who: Name used in error messages (default ``build_<kind>``).
        yaml_extra: Top-level lines ``root/data.yaml`` needs beside the names (a pose set's ``kpt_shape``).
    """
    who = who or f"build_{kind}"
    n_train, n_val = check_int(who, "n_train", n_train, 1), check_int(who, "n_val", n_val, 1)
    imgsz, seed = check_int(who, "imgsz", imgsz, 64), check_int(who, "seed", seed, 0)
    workers = check_int(who, "workers", min(4, usable_cores()) if workers is None else workers, 1)
    layout = layout or DetectLayout()
    root = Path(root).expanduser().absolute()
    meta = dict(kind=kind, version=VERSION, n_train=n_train, n_val=n_val, imgsz=imgsz, seed=seed, **extra)

    if root.exists():
        old = read_marker(root)
        if old == meta:
            return root  # already complete with identical parameters
        if old is None and root.is_dir() and any(root.iterdir()):
            raise FileExistsError(f"{root} is not empty and not built by yolo_attn.datasets; refusing to overwrite it")
        if not root.is_dir():
            raise FileExistsError(f"{root} exists and is not a directory")

    root.parent.mkdir(parents=True, exist_ok=True)
    # Same filesystem as root so the final rename is atomic; the '.partial' name never looks complete.
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private (0700); the dataset should be readable like any other
    try:
        for split_id, (split, n) in enumerate((("train", n_train), ("val", n_val))):
            layout.prepare(tmp, split)

            def job(i: int, split: str = split, split_id: int = split_id) -> None:
                # Per-image seed: results do not depend on thread scheduling or on n.
                rng = np.random.default_rng([seed, sum(map(ord, kind)), split_id, i])
                img, label = render(rng, imgsz, i)
                ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                if not ok:
                    raise RuntimeError(f"JPEG encoding failed for {split} image {i}")
                layout.write(tmp, split, f"{i:06d}", buf.tobytes(), label, imgsz)

            if workers == 1:
                for i in range(n):
                    job(i)
            else:
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(job, range(n)))  # list() re-raises worker exceptions
        if names is not None:
            comment = f"yolo_attn.datasets '{kind}' ({n_train} train + {n_val} val images at {imgsz} px, seed {seed})"
            (tmp / DATA_YAML).write_text(data_yaml_text(names, comment, yaml_extra))
        (tmp / MARKER).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")

        trash = None
        if root.exists():  # empty dir or our own build with other parameters: move aside, then swap
            trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
            os.replace(root, trash / "d")
        try:
            os.replace(tmp, root)
        except OSError:
            # Another process (e.g. a DDP rank) finished the same build first: keep theirs.
            if read_marker(root) != meta:
                raise
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
