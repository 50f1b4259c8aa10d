"""Train several model configs on the same data with identical settings and compare accuracy vs. speed.

Each (dataset, model, seed) run is an independent subprocess (this script re-invoked as a worker) with its own
Ultralytics `project/name` directory and log file, so several runs can share a GPU: `--parallel N` keeps N runs
going at once, `--devices 0,1` spreads them over GPUs (each run gets `device=<one id>`, least-loaded first). A failed
run is reported as failed, with its log tail, and does not stop the others. The embedded datasets (`shapes`,
`context`, from `yolo_attn.datasets`) are built once, before any run starts, and their Ultralytics label caches are
scanned once too, so parallel runs never race to create either.

All runs of one dataset get the same explicit training arguments (optimizer=SGD, lr0, seed, deterministic, ...), so
Ultralytics' `optimizer=auto` cannot pick different optimizers for different models. `val=False`: in Ultralytics
8.4 that validates only after the final epoch (and `save=False` writes a checkpoint only then), so the reported
metrics are those of the final model, with no best-epoch selection on the validation set.

Written to --out: results.json (all runs + summary), results.md (tables), compare.png (mAP50-95 vs training
throughput), runs/<dataset>/<model>-s<seed>/ (Ultralytics dir; weights deleted unless --keep-weights) and
logs/<dataset>/<model>-s<seed>.log. results.json/results.md are rewritten after every finished run, so a
killed session still leaves the runs finished so far.

`--suite TASK,...|all` runs the accuracy suite of `yolo_attn.datasets` (`python -m yolo_attn.datasets list`) instead
of `--data`: every task is built once at its own size and trained at its own imgsz (unless --data-imgsz / --imgsz
are given), under `--protocol main|default|cue|both` (main: each task's first protocol; a protocol a task does not
call meaningful falls back to its main one). After training, a context-task run is validated once more
class-agnostically (single_cls on a twin of its val set): that mAP50-95 is the run's ceiling, and the run *found the
cue* when its mAP50-95 reaches the task's threshold (half way from ceiling / K to the ceiling). results.md/json then
add per-task tables (mean, std, per seed, seeds that found the cue) and a suite summary (mean over neutral tasks,
mean over context tasks, delta to `--baseline`).

Examples:
  python scripts/compare.py --suite all --models yolov8n.yaml configs/yolov8n-attn.yaml --epochs 30 --batch 32 \\
      --seeds 0,1,2 --parallel 14 --workers 2 --budget 530
  python scripts/compare.py --data shapes,context --n-train 1000 --n-val 200 --epochs 30 --imgsz 320 \\
      --batch 32 --seeds 0,1 --parallel 12 --devices 0,1 --workers 2 --budget 510
  python scripts/compare.py --models yolov8n.yaml configs/yolov8n-attn.yaml --data shapes --epochs 1 \\
      --imgsz 64 --batch 8 --seeds 0 --n-train 16 --n-val 8 --parallel 2 --devices cpu --workers 0
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import variants  # noqa: E402  (model specs with SelfAttentionBlock arguments overridden)
from compare_suite import prepare_suite, resolve_baseline, suite_markdown, suite_summary  # noqa: E402
DEFAULT_MODELS = [
    "yolov8n.yaml",
    "configs/yolov8n-attn.yaml",
    "configs/yolov8n-attn-p45.yaml",
    "configs/yolov8n-attn-efficient.yaml",
    "yolo11n.yaml",
    "yolo12n.yaml",
]
MAP = "metrics/mAP50-95(B)"
MAP50 = "metrics/mAP50(B)"
WORKER = "_worker"  # argv[1] of a run subprocess


# ---------------------------------------------------------------------------------------------------- worker
def worker(spec_path: str) -> int:
    """One training run, in its own process. Writes <run dir>/compare_run.json; exit code 0 on success."""
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["result"])
    info: dict = {"status": "failed", "pid": os.getpid()}
    t_start = time.perf_counter()
    try:
        import ultralytics.nn.tasks  # noqa: F401  (before yolo_attn: registration hooks onto this module)

        import yolo_attn  # noqa: F401  registers the attention layers with Ultralytics

        import torch
        from ultralytics import YOLO
        from ultralytics.utils import torch_utils

        if spec.get("threads"):  # Ultralytics resets CPU training to min(8, cores - 1) threads: respect our share
            torch_utils.NUM_THREADS = int(spec["threads"])
            torch.set_num_threads(int(spec["threads"]))

        timing = {"t0": 0.0, "b0": 0.0, "epoch_s": [], "compute_s": 0.0, "n_train": None, "device_name": None}

        def _sync(trainer) -> None:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)

        def on_epoch_start(trainer) -> None:
            _sync(trainer)
            timing["t0"] = time.perf_counter()

        def on_batch_start(trainer) -> None:  # fires once the batch is loaded
            timing["b0"] = time.perf_counter()

        def on_batch_end(trainer) -> None:  # after forward, backward and (maybe) the optimizer step
            _sync(trainer)
            timing["compute_s"] += time.perf_counter() - timing["b0"]

        def on_epoch_end(trainer) -> None:  # fires after the batch loop, before validation
            _sync(trainer)
            timing["epoch_s"].append(time.perf_counter() - timing["t0"])
            timing["n_train"] = len(trainer.train_loader.dataset)
            if timing["device_name"] is None:
                d = trainer.device
                timing["device_name"] = torch.cuda.get_device_name(d) if d.type == "cuda" else str(d)

        model = YOLO(spec["model"], task="detect")
        model.add_callback("on_train_epoch_start", on_epoch_start)
        model.add_callback("on_train_epoch_end", on_epoch_end)
        model.add_callback("on_train_batch_start", on_batch_start)
        model.add_callback("on_train_batch_end", on_batch_end)
        model.train(**spec["train_args"])
        trainer = model.trainer

        train_s = sum(timing["epoch_s"])
        n_img = (timing["n_train"] or 0) * len(timing["epoch_s"])
        info.update(
            status="ok",
            save_dir=str(trainer.save_dir),
            device_name=timing["device_name"],
            n_train=timing["n_train"],
            epochs_done=len(timing["epoch_s"]),
            epoch_s=[round(t, 3) for t in timing["epoch_s"]],
            train_s=train_s,
            img_s=n_img / train_s if train_s > 0 else None,
            compute_s=timing["compute_s"],
            compute_img_s=n_img / timing["compute_s"] if timing["compute_s"] > 0 else None,
            final_eval={k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))},
        )
        if spec.get("agnostic_data"):  # the localisation ceiling: same model, every box one class
            ta = spec["train_args"]
            m = model.val(
                data=spec["agnostic_data"], single_cls=True, imgsz=ta["imgsz"], batch=ta["batch"],
                device=ta.get("device"), workers=ta.get("workers", 0), plots=False, verbose=False,
                project=ta["project"], name=ta["name"] + "-agnostic", exist_ok=True,
            )
            info["map50_95_agnostic"] = float(m.box.map)
        # Cost of the architecture, on a fresh CPU copy (training model untouched). get_flops is looked up at call
        # time: yolo_attn replaces it with a version that is exact for attention layers.
        try:
            from ultralytics.nn.tasks import DetectionModel

            m = DetectionModel(spec["model"], nc=len(trainer.data["names"]), verbose=False)
            info["params"] = torch_utils.get_num_params(m)
            info["gflops"] = torch_utils.get_flops(m, spec["train_args"]["imgsz"])
            info["gflops640"] = torch_utils.get_flops(m, 640)
        except Exception as e:  # cost is informative only
            info["cost_error"] = f"{type(e).__name__}: {e}"
        if not spec.get("keep_weights"):
            shutil.rmtree(Path(trainer.save_dir) / "weights", ignore_errors=True)
    except BaseException as e:
        import traceback

        traceback.print_exc()
        info["error"] = f"{type(e).__name__}: {e}"[:500]
    info["wall_s"] = time.perf_counter() - t_start
    out.write_text(json.dumps(info, indent=1))
    return 0 if info["status"] == "ok" else 1


# ---------------------------------------------------------------------------------------------------- helpers
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


def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(f"--extra expects key=value, got {it!r}")
        k, v = it.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def default_devices() -> str:
    try:
        import torch

        n = torch.cuda.device_count()  # NVML query; does not create a CUDA context in this process
    except Exception:
        n = 0
    return ",".join(str(i) for i in range(n)) if n else "cpu"


def model_labels(models: list[str]) -> list[str]:
    labels, seen = [], {}
    for m in models:
        s = variants.label(m)
        seen[s] = seen.get(s, 0) + 1
        labels.append(s if seen[s] == 1 else f"{s}#{seen[s]}")
    return labels


# ---------------------------------------------------------------------------------------------------- datasets
def prepare_data(name: str, a: argparse.Namespace) -> tuple[str, str, dict]:
    """Build (once) an embedded dataset, or take a data YAML path. Returns (label, data yaml path, train overrides)."""
    if name not in ("shapes", "context"):
        p = Path(name).expanduser()
        if not p.is_file():
            raise SystemExit(f"--data {name!r}: not 'shapes', 'context' or an existing data YAML")
        return p.stem, str(p.resolve()), {}

    sys.path.insert(0, str(REPO))
    from yolo_attn import datasets as ds

    builder = ds.build_shapes if name == "shapes" else ds.build_context
    names = ds.SHAPES_NAMES if name == "shapes" else ds.CONTEXT_NAMES
    wanted = {
        "n_train": a.n_train,
        "n_val": a.n_val,
        "imgsz": a.data_imgsz or max(a.imgsz, 64),
        "seed": a.data_seed,
        "workers": os.cpu_count() or 1,
        "min_gap": a.min_gap if name == "context" else None,
    }
    params = inspect.signature(builder).parameters
    kw = {k: v for k, v in wanted.items() if v is not None and k in params}
    ignored = [k for k, v in wanted.items() if v is not None and k not in params and k != "workers"]
    if ignored:
        print(f"warning: {builder.__name__} does not take {ignored}; ignored", flush=True)
    tag = "-".join(f"{k}{kw[k]}" for k in ("n_train", "n_val", "imgsz", "seed", "min_gap") if k in kw)
    tag = tag.replace("n_train", "tr").replace("n_val", "va").replace("imgsz", "px").replace("min_gap", "gap")
    root = Path(a.datasets_dir).expanduser().resolve() / f"{name}-{tag}"
    t = time.perf_counter()
    root = Path(builder(root, **kw)).resolve()
    yaml_path = root.parent / f"{root.name}.yaml"
    lines = [
        f"# written by scripts/compare.py: {builder.__name__}({', '.join(f'{k}={v!r}' for k, v in kw.items())})",
        f"path: {json.dumps(str(root))}",
        "train: images/train",
        "val: images/val",
        "names:",
        *[f"  {i}: {n}" for i, n in enumerate(names)],
        "",
    ]
    tmp = yaml_path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, yaml_path)
    overrides = dict(getattr(ds, f"{name.upper()}_TRAIN_OVERRIDES", {}) or {})
    if name == "context" and not overrides:  # the dataset's documented requirement, if the constant is missing
        overrides = {"mosaic": 0.0, "scale": 0.0, "translate": 0.0}
    n_imgs = {s: len(list((root / "images" / s).glob("*.jpg"))) for s in ("train", "val")}
    print(f"data {name}: {root} ({n_imgs['train']} train, {n_imgs['val']} val, {time.perf_counter() - t:.1f}s)", flush=True)
    return name, str(yaml_path), overrides


def prescan_labels(data_yaml: str, imgsz: int, cache: str, single_cls: bool = False) -> None:
    """Create Ultralytics' labels/*.cache (and, for cache=disk, images/*.npy) once, so parallel runs only read them."""
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(data_yaml)
    for split in ("train", "val"):
        paths = data.get(split)
        for p in paths if isinstance(paths, list) else [paths]:
            if p:
                YOLODataset(
                    img_path=p, imgsz=imgsz, augment=False, data=data, task="detect",
                    cache=cache == "disk" and "disk", single_cls=single_cls,
                )


# ---------------------------------------------------------------------------------------------------- report
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


# ---------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS,
                   help="model YAMLs (names or paths), or variants: configs/yolov8n-attn.yaml:head_dim=64,kv_tokens=400")
    p.add_argument("--data", default="shapes", help="comma list of shapes | context | path/to/data.yaml")
    p.add_argument("--suite", default=None, metavar="TASK,...|all", help="run accuracy-suite tasks instead of --data")
    p.add_argument("--protocol", default="main", choices=("main", "default", "cue", "both"),
                   help="suite: augmentation protocol(s) per task (main: the task's first meaningful one)")
    p.add_argument("--baseline", default=None, help="suite: model (label or YAML) the summary's deltas refer to (default: first model)")
    p.add_argument("--datasets-dir", default="datasets", help="where embedded datasets are built (default ./datasets)")
    p.add_argument("--n-train", type=int, default=None, help="embedded dataset: train images (builder default)")
    p.add_argument("--n-val", type=int, default=None, help="embedded dataset: val images (builder default)")
    p.add_argument("--data-imgsz", type=int, default=None, help="embedded dataset image side (default: --imgsz, >=64)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--min-gap", type=float, default=None, help="context dataset cue gap (builder default)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--imgsz", type=int, default=None, help="train image size (default 320; suite: each task's own)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seeds", default="0,1", help="comma list of training seeds")
    p.add_argument("--optimizer", default="SGD")
    p.add_argument("--lr0", type=float, default=0.01)
    p.add_argument("--cache", default="ram", choices=("ram", "disk", "none"), help="Ultralytics image cache")
    p.add_argument("--no-deterministic", action="store_true", help="deterministic=False (faster on GPU)")
    p.add_argument("--val-every-epoch", action="store_true", help="val=True (default: validate after the last epoch only)")
    p.add_argument("--no-data-overrides", action="store_true", help="ignore the dataset's recommended augmentation")
    p.add_argument("--extra", nargs="*", default=[], metavar="K=V", help="more Ultralytics train args, for every run")
    p.add_argument("--parallel", type=int, default=1, help="runs at a time")
    p.add_argument("--devices", default=None, help="'cpu' or comma list of GPU ids (default: all GPUs, else cpu)")
    p.add_argument("--workers", type=int, default=2, help="dataloader workers per run")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per run (default: cores / parallel)")
    p.add_argument("--run-timeout", type=float, default=None, help="kill a run after this many seconds")
    p.add_argument("--budget", type=float, default=None, help="total seconds: launch nothing new, kill stragglers, report")
    p.add_argument("--keep-weights", action="store_true", help="keep each run's weights/ (default: delete)")
    p.add_argument("--out", default=os.environ.get("OUT") or "compare_out")
    a = p.parse_args(argv)
    a.suite_imgsz = a.imgsz  # None: each suite task trains at its own size
    a.imgsz = a.imgsz or 320

    t0 = time.time()
    out = Path(a.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    devices = [d.strip() for d in (a.devices or default_devices()).split(",") if d.strip()]
    if any("@" in m for m in a.models):  # a revision's code lives in this process only; runs are `yolo` processes
        raise SystemExit("compare.py: `config@REV` specs are for benchmark.py; check out that revision instead")
    labels = model_labels(a.models)
    if a.suite:
        a.baseline = resolve_baseline(a.baseline, a.models, labels)
    # Variant specs become YAML files in the output folder, which every run (and a reader) can open.
    a.models = [variants.materialize(m, out / "configs") if variants.split_spec(m)[1] else m for m in a.models]
    threads = a.threads or max(1, (os.cpu_count() or 1) // max(1, a.parallel))
    extra = parse_overrides(a.extra)

    # Datasets first, once: parallel runs then only read them.
    if a.suite:
        data = prepare_suite(a)
    else:
        data = [(*prepare_data(d.strip(), a), {}) for d in a.data.split(",") if d.strip()]
    a.sizes = {dname: dargs.get("imgsz", a.imgsz) for dname, _, _, dargs in data}
    for _, yml, _, dargs in data:
        scans = [(yml, False)] + ([(dargs["agnostic_data"], True)] if dargs.get("agnostic_data") else [])
        for y, single in scans:
            try:
                prescan_labels(y, dargs.get("imgsz", a.imgsz), a.cache, single)
            except Exception as e:  # runs will scan themselves; Ultralytics tolerates a concurrent rewrite
                print(f"warning: label pre-scan of {y} failed: {type(e).__name__}: {e}", flush=True)

    common = dict(
        epochs=a.epochs,
        imgsz=a.imgsz,
        batch=a.batch,
        optimizer=a.optimizer,
        lr0=a.lr0,
        deterministic=not a.no_deterministic,
        pretrained=False,
        plots=False,
        val=a.val_every_epoch,
        save=False,  # checkpoint only at the end (final_eval reads best.pt = final model when val=False)
        cache=False if a.cache == "none" else a.cache,
        workers=a.workers,
        exist_ok=True,
        verbose=True,
        patience=max(100, a.epochs + 1),
    )
    runs: list[dict] = []
    for seed in seeds:  # seed-major: if the budget runs out, every model still has its first seeds
        for dname, yml, dover, dargs in data:
            for cfg, label in zip(a.models, labels):
                rdir = out / "runs" / dname.replace(":", "-") / f"{label}-s{seed}"
                train_args = {
                    **common,
                    **({"imgsz": dargs["imgsz"]} if "imgsz" in dargs else {}),
                    **({} if a.no_data_overrides else dover),
                    **extra,
                    "data": yml,
                    "seed": seed,
                    "project": str(rdir.parent),
                    "name": rdir.name,
                }
                runs.append(
                    {
                        "dataset": dname,
                        "model": label,
                        "cfg": cfg,
                        "seed": seed,
                        "status": "pending",
                        "run_dir": str(rdir),
                        "log": str(out / "logs" / dname.replace(":", "-") / f"{label}-s{seed}.log"),
                        "train_args": train_args,
                        "agnostic_data": dargs.get("agnostic_data"),
                    }
                )

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("YOLO_OFFLINE", "1")  # no download/analytics attempts (AMP check then warns and keeps AMP on)
    env["OMP_NUM_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    concurrency = f"{a.parallel} concurrent on {','.join(devices)}"
    print(
        f"plan: {len(runs)} runs = {len(data)} data x {len(labels)} models x {len(seeds)} seeds; {concurrency}, "
        f"{a.workers} loader workers + {threads} threads per run; out {out}",
        flush=True,
    )
    print("train args: " + json.dumps({k: v for k, v in runs[0]["train_args"].items() if k not in ("data", "seed", "project", "name")}), flush=True)
    for dname, _, dover, _ in data:
        if dover and not a.no_data_overrides:
            print(f"  {dname} overrides: {dover}", flush=True)

    def save_reports(final: bool = False) -> str:
        summary = summarise(runs, [d for d, _, _, _ in data], labels)
        md = markdown(summary, a, len(seeds), concurrency)
        suite = suite_summary(runs, data, labels, a.baseline) if a.suite else None
        if suite:
            md = suite_markdown(suite, a) + "\n\n" + md
        fails = [r for r in runs if r["status"] not in ("ok", "pending", "running") and not r["status"].startswith("skipped")]
        skipped = [r for r in runs if r["status"].startswith("skipped")]
        if skipped:
            md += f"\n\n{len(skipped)} runs not started ({skipped[0]['status']}): " + ", ".join(
                f"{r['dataset']}/{r['model']}/s{r['seed']}" for r in skipped
            )
        if fails:
            md += "\n\nFailed runs (log tails):\n" + "\n".join(
                f"- {r['dataset']} {r['model']} s{r['seed']} ({r['status']}): {r['log']}\n```\n{r.get('tail', '')}\n```"
                for r in fails
            )
        (out / "results.md").write_text(md + "\n")
        res = {
            "args": vars(a),
            "devices": devices,
            "elapsed_s": time.time() - t0,
            "complete": final,
            "summary": summary,
            **({"suite": suite} if suite else {}),
            "runs": [{k: v for k, v in r.items() if k != "proc"} for r in runs],
        }
        (out / "results.json").write_text(json.dumps(res, indent=1, default=str))
        if final:
            try:
                plot(summary, out / "compare.png", a)
            except Exception as e:
                print(f"warning: plot failed: {type(e).__name__}: {e}", flush=True)
        return md

    def launch(r: dict, device: str) -> None:
        rdir = Path(r["run_dir"])
        shutil.rmtree(rdir, ignore_errors=True)  # results.csv appends: never mix with a stale run
        rdir.mkdir(parents=True)
        Path(r["log"]).parent.mkdir(parents=True, exist_ok=True)
        r["train_args"]["device"] = device
        spec = {
            "model": r["cfg"],
            "train_args": r["train_args"],
            "result": str(rdir / "compare_run.json"),
            "threads": threads if device == "cpu" else None,
            "keep_weights": a.keep_weights,
            "agnostic_data": r.get("agnostic_data"),
        }
        spec_path = rdir / "compare_spec.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        logf = open(r["log"], "wb")
        r["proc"] = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), WORKER, str(spec_path)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own process group: a kill also reaches its dataloader workers
        )
        logf.close()
        r.update(status="running", device=device, t_start=time.time())

    def kill(r: dict) -> None:
        proc = r["proc"]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            try:
                proc.wait(timeout=10)
                return
            except subprocess.TimeoutExpired:
                continue

    def collect(r: dict, rc: int | None, why: str | None = None) -> None:
        r["wall_s"] = time.time() - r["t_start"]
        r["rc"] = rc
        info = {}
        try:
            info = json.loads((Path(r["run_dir"]) / "compare_run.json").read_text())
        except (OSError, ValueError):
            pass
        res = read_results_csv(Path(info.get("save_dir") or r["run_dir"]) / "results.csv")
        for k in ("device_name", "n_train", "epochs_done", "epoch_s", "train_s", "img_s", "compute_s", "compute_img_s", "params", "gflops", "gflops640", "final_eval", "error", "map50_95_agnostic"):
            if k in info:
                r[k] = info[k]
        if res:
            r["map50_95"], r["map50"] = res.get(MAP), res.get(MAP50)
            r["csv_final"] = res
        ok = rc == 0 and info.get("status") == "ok" and res is not None and r.get("map50_95") is not None
        if not ok and r.get("final_eval", {}).get(MAP) is not None and rc == 0 and info.get("status") == "ok":
            r["map50_95"], r["map50"] = r["final_eval"][MAP], r["final_eval"].get(MAP50)
            ok = True
        r["status"] = "ok" if ok else (why or "failed")
        if not ok:
            r["tail"] = log_tail(Path(r["log"]))
        r.pop("proc", None)

    pending = list(runs)
    running: list[dict] = []
    done = 0
    last_report = time.time()
    stopping = False
    try:
        while pending or running:
            now = time.time()
            over_budget = a.budget is not None and now - t0 > a.budget
            if over_budget and not stopping:
                stopping = True
                print(f"budget {a.budget:.0f}s reached: {len(pending)} runs not started, stopping {len(running)}", flush=True)
                for r in pending:
                    r["status"] = "skipped (budget)"
                pending.clear()
                for r in running:
                    kill(r)
            while pending and len(running) < a.parallel and not stopping:
                load = {d: sum(r["device"] == d for r in running) for d in devices}
                dev = min(devices, key=lambda d: (load[d], devices.index(d)))
                r = pending.pop(0)
                launch(r, dev)
                running.append(r)
            time.sleep(0.5)
            for r in list(running):
                rc = r["proc"].poll()
                why = None
                if rc is None:
                    if a.run_timeout and time.time() - r["t_start"] > a.run_timeout:
                        kill(r)
                        rc, why = r["proc"].returncode, "timeout"
                    elif stopping:
                        rc, why = r["proc"].returncode if r["proc"].poll() is not None else -9, "killed (budget)"
                    else:
                        continue
                elif stopping:
                    why = "killed (budget)"
                running.remove(r)
                collect(r, rc, why)
                done += 1
                el = time.time() - t0
                left = len(pending) + len(running)
                eta = el / done * left if done and not stopping else 0.0
                if r["status"] == "ok":
                    res = f"mAP50-95 {r['map50_95']:.3f} mAP50 {r['map50']:.3f} train {r.get('train_s', 0):.1f}s {r.get('img_s') or 0:.0f} img/s"
                else:
                    last = (r.get("tail") or "").strip().splitlines()[-1:] or [""]
                    res = f"{r['status'].upper()} rc={rc}: {last[0][:120]}"
                print(
                    f"[{done:>3}/{len(runs)}] {r['dataset']} {r['model']} s{r['seed']} dev{r['device']} "
                    f"{fmt_s(r['wall_s'])}: {res} | elapsed {fmt_s(el)} ETA {fmt_s(eta)}",
                    flush=True,
                )
                save_reports()
                last_report = time.time()
            if running and time.time() - last_report > 120:
                print(f"... {len(running)} running, {done}/{len(runs)} done, elapsed {fmt_s(time.time() - t0)}", flush=True)
                last_report = time.time()
    except KeyboardInterrupt:
        print("interrupted: stopping running runs", flush=True)
        for r in running:
            kill(r)
            collect(r, r["proc"].returncode if "proc" in r else None, "interrupted")
        for r in pending:
            r["status"] = "skipped (interrupted)"

    md = save_reports(final=True)
    n_ok = sum(r["status"] == "ok" for r in runs)
    print(f"\n{n_ok}/{len(runs)} runs ok in {fmt_s(time.time() - t0)}; wrote {out}/results.md, results.json, compare.png\n")
    # Compact: tables in full, failed-run tails capped so the end of the output stays readable.
    if len(md) > 9000:
        md = md[:9000] + f"\n... (truncated; see {out}/results.md)"
    print(md, flush=True)
    return 0 if n_ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == WORKER:
        sys.exit(worker(sys.argv[2]))
    sys.exit(main())
