"""The reports of scripts/compare.py: per-run numbers read back (results.csv, log tails), per dataset and model
summaries (mean, std, min, max over seeds), the Markdown tables and the accuracy-vs-throughput plot."""

from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
from pathlib import Path

MAP = "metrics/mAP50-95(B)"
MAP50 = "metrics/mAP50(B)"


def fmt_s(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def stats(xs: list[float]) -> dict | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return None
    return {
        "mean": statistics.fmean(xs),
        "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "min": min(xs),
        "max": max(xs),
        "n": len(xs),
    }


def pm(s: dict | None, nd: int = 3) -> str:
    if not s:
        return "-"
    return f"{s['mean']:.{nd}f}±{s['std']:.{nd}f}" if s["n"] > 1 else f"{s['mean']:.{nd}f}"


def read_results_csv(path: Path) -> dict | None:
    """Last row of an Ultralytics results.csv (the final epoch's validation), as floats."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    if not rows:
        return None
    out = {}
    for k, v in rows[-1].items():
        try:
            out[k.strip()] = float(v)
        except (TypeError, ValueError):
            pass
    return out


def log_tail(path: Path, n: int = 12) -> str:
    try:
        data = path.read_bytes()[-64_000:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    data = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", data)  # ANSI colours / erase-line
    lines = [ln.rstrip() for ln in re.split(r"[\r\n]+", data) if ln.strip()]
    return "\n".join(ln[:300] for ln in lines[-n:])


def summarise(runs: list[dict], datasets: list[str], labels: list[str]) -> dict:
    summary = {}
    for d in datasets:
        summary[d] = {}
        for m in labels:
            rs = [r for r in runs if r["dataset"] == d and r["model"] == m]
            ok = [r for r in rs if r["status"] == "ok"]
            cost = next((r for r in ok if r.get("params")), {})
            summary[d][m] = {
                "cfg": rs[0]["cfg"] if rs else None,
                "runs": len(rs),
                "ok": len(ok),
                "failed": sum(r["status"] != "ok" for r in rs if r["status"] not in ("pending", "running")),
                "params": cost.get("params"),
                "gflops": cost.get("gflops"),
                "gflops640": cost.get("gflops640"),
                "map50_95": stats([r.get("map50_95") for r in ok]),
                "map50": stats([r.get("map50") for r in ok]),
                "train_s": stats([r.get("train_s") for r in ok]),
                "img_s": stats([r.get("img_s") for r in ok]),
                "compute_img_s": stats([r.get("compute_img_s") for r in ok]),
                "wall_s": stats([r.get("wall_s") for r in ok]),
            }
    return summary


def markdown(summary: dict, a: argparse.Namespace, n_seeds: int, concurrency: str) -> str:
    out = []
    for d, rows in summary.items():
        px = getattr(a, "sizes", {}).get(d, a.imgsz)  # suite tasks train at their own size
        out.append(f"### {d}: {a.epochs} ep, {px}px, batch {a.batch}, SGD lr0={a.lr0}, seeds {a.seeds}, {concurrency}")
        out.append(f"| model | params M | GFLOPs@{px} | mAP50-95 | mAP50 | train s | img/s | compute img/s | ok |")
        out.append("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
        for m, s in rows.items():
            if not s["runs"]:
                continue
            params = f"{s['params'] / 1e6:.2f}" if s["params"] else "-"
            gfl = f"{s['gflops']:.2f}" if s["gflops"] else "-"
            if s["ok"]:
                row = [pm(s["map50_95"]), pm(s["map50"]), pm(s["train_s"], 1), pm(s["img_s"], 0), pm(s["compute_img_s"], 0)]
            else:
                row = ["FAILED" if s["failed"] else "-", "-", "-", "-", "-"]
            out.append(f"| {m} | {params} | {gfl} | " + " | ".join(row) + f" | {s['ok']}/{s['runs']} |")
        out.append("")
    out.append(
        "mean±std over seeds; mAP of the final epoch's model on val; train s = summed epoch times (no val, no start-up);"
        " img/s = train images x epochs / train s; compute img/s leaves out waiting for the dataloader"
        " (forward+backward+step only). Both measured while other runs shared the machine."
    )
    return "\n".join(out)


def plot(summary: dict, path: Path, a: argparse.Namespace) -> None:
    """mAP50-95 vs throughput, one point per model; row 1 end-to-end img/s, row 2 compute-only img/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = [d for d, rows in summary.items() if any(s["ok"] for s in rows.values())]
    if not ds:
        return
    xs = (("img_s", "training throughput, img/s"), ("compute_img_s", "compute-only throughput (no data wait), img/s"))
    fig, axes = plt.subplots(2, len(ds), figsize=(6.5 * len(ds), 9), squeeze=False)
    for col, d in enumerate(ds):
        for row, (key, xlabel) in enumerate(xs):
            ax = axes[row][col]
            for i, (m, s) in enumerate(summary[d].items()):
                if not s["ok"] or not s.get(key) or not s.get("map50_95"):
                    continue
                x, y = s[key]["mean"], s["map50_95"]["mean"]
                xerr = [[x - s[key]["min"]], [s[key]["max"] - x]]
                yerr = s["map50_95"]["std"] if s["map50_95"]["n"] > 1 else None
                ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=4, color=f"C{i % 10}", label=m)
                ax.annotate(m, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
            ax.set_xlabel(f"{xlabel} (bars: min-max over seeds)")
            ax.set_ylabel("mAP50-95 (bars: std over seeds)")
            ax.set_title(f"{d}: {a.epochs} ep @ {a.imgsz}px, batch {a.batch}, seeds {a.seeds}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
