"""Helpers the scripts share: logging, error text, a device handle that times and profiles, tables, sizes, env.

Scripts import it as `_common` (their own folder is on sys.path when run as `python scripts/x.py`); importing it
puts the repository root on sys.path too, so the scripts run from a source checkout without installing.
"""

from __future__ import annotations

import datetime
import gc
import importlib.metadata
import math
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
GiB = 1024**3
_TRIGGERED = re.compile(r"\s*\(Triggered internally at [^)]*\)\.?")


def log(*a) -> None:
    print(*a, flush=True)


def short(s, n: int = 90) -> str:
    """`s` on one line, cut to `n` characters with '...'."""
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def first_sentence(s) -> str:
    """The first sentence of a message, without PyTorch's '(Triggered internally at ...)' location."""
    s = _TRIGGERED.sub("", " ".join(str(s).split()))
    m = re.match(r"(.+?[.!?])(\s|$)", s)
    return m.group(1) if m else s


def is_oom(e: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    text = str(e)
    return isinstance(e, oom_type) or "out of memory" in text.lower() or "CUBLAS_STATUS_ALLOC_FAILED" in text


def error_text(e: BaseException, reasons: list[str] | None = None) -> str:
    """'OOM', or 'error: Type: first sentence | reasons' (e.g. why PyTorch refused a kernel) for a table cell."""
    if is_oom(e):
        return "OOM"
    msg = f"error: {type(e).__name__}: {short(first_sentence(e), 160)}"
    if reasons:
        msg += " | " + " ".join(dict.fromkeys(r for r in reasons if r))
    return msg


def warning_texts(caught) -> list[str]:
    """Caught warnings as one-line texts without their source locations."""
    return [t for t in (_TRIGGERED.sub("", " ".join(str(w.message).split())) for w in caught) if t]


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'640:32,1280:8' -> [(640, 32), (1280, 8)]."""
    out = []
    for part in filter(None, text.split(",")):
        s, b = part.split(":")
        out.append((int(s), int(b)))
    return out


def ints(text: str) -> list[int]:
    """'1,32' -> [1, 32]."""
    return [int(t) for t in text.split(",") if t]


def num(v: float) -> str:
    """Three significant figures without exponents: 678, 30.4, 4.03, 0.193."""
    if v == 0 or not math.isfinite(v):
        return str(v)
    digits = max(0, 2 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def env_header(device: torch.device) -> dict:
    """Date, device and software versions: the header of every results file."""

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "n/a"

    import yolo_attn

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "ultralytics": version("ultralytics"),
        "yolo_attn": getattr(yolo_attn, "__version__", "n/a"),
        "python": platform.python_version(),
    }


class Dev:
    """One device: synchronise, peak memory, cleanup, and timing of a callable (CUDA events on the GPU)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / GiB if self.cuda else None

    def cleanup(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def time_ms(self, fn: Callable[[], object]) -> float:
        """Latency of one call: synchronised before and after; CUDA events on the GPU."""
        if self.cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(self.device)
            s.record()
            fn()
            e.record()
            e.synchronize()
            return s.elapsed_time(e)
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    def measure(self, fn: Callable[[], object], warmup: int, iters: int, max_s: float, min_iters: int = 3) -> dict:
        """Warm up, then time `iters` calls (fewer if one call is slow: about max_s seconds in all); median ms."""
        t0 = time.perf_counter()
        first = None
        for _ in range(max(1, warmup)):
            t = self.time_ms(fn)
            first = t if first is None else min(first, t)
        n = iters
        if first and first * iters / 1e3 > max_s:
            n = max(min_iters, int(max_s * 1e3 / first))
        times = [self.time_ms(fn) for _ in range(n)]
        return {"ms": statistics.median(times), "iters": n, "warmup_s": time.perf_counter() - t0}


def profiled_events(fn: Callable[[], object], dev: Dev):
    """Run `fn` once under torch.profiler (CPU and CUDA activities), synchronised; return the profiler's events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.cuda else [])) as prof:
        fn()
        dev.sync()
    return prof.events()
