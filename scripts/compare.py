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

`--merge A/results.json B/results.json ...` trains nothing: it joins the suite runs of several calls (each of which
ran part of the suite) into one report (results.md, results.json, suite.png in --out).

A run is compare_worker.py in its own process; the tables and plot are compare_report.py; the embedded datasets
compare_data.py; the suite's building and summaries compare_suite.py.

Examples:
  python scripts/compare.py --suite all --models yolov8n.yaml configs/yolov8n-attn.yaml --epochs 30 --batch 32 \\
      --seeds 0,1,2 --parallel 14 --workers 2 --budget 530
  python scripts/compare.py --data shapes,context --n-train 1000 --n-val 200 --epochs 30 --imgsz 320 \\
      --batch 32 --seeds 0,1 --parallel 12 --devices 0,1 --workers 2 --budget 510
  python scripts/compare.py --suite count --models yolov8n.yaml configs/yolov8n-attn.yaml:mlp_ratio=2 \\
      "configs/yolov8n-attn.yaml+attn_lr=10,attn_wd=0" "yolov8n.yaml+optimizer=auto" --seeds 0,1,2 --parallel 14
  (a model spec's `:key=v` sets SelfAttentionBlock arguments, its `+key=v` training arguments of that model's runs
  alone, `attn_lr`/`attn_wd` among them: compare_worker.separate_attention_groups; see variants.py)
  python scripts/compare.py --models yolov8n.yaml configs/yolov8n-attn.yaml --data shapes --epochs 1 \\
      --imgsz 64 --batch 8 --seeds 0 --n-train 16 --n-val 8 --parallel 2 --devices cpu --workers 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import variants  # noqa: E402  (model specs with SelfAttentionBlock arguments overridden)
from compare_report import MAP, MAP50, fmt_s, log_tail, markdown, plot, read_results_csv, summarise  # noqa: E402
from compare_data import prepare_data, prescan_labels  # noqa: E402
from compare_worker import worker  # noqa: E402
from compare_suite import merge_results, prepare_suite, resolve_baseline, suite_markdown, suite_plot, suite_summary  # noqa: E402
DEFAULT_MODELS = [
    "yolov8n.yaml",
    "configs/yolov8n-attn.yaml",
    "configs/yolov8n-attn-p45.yaml",
    "configs/yolov8n-attn-efficient.yaml",
    "yolo11n.yaml",
    "yolo12n.yaml",
]
WORKER = "_worker"  # argv[1] of a run subprocess


# ---------------------------------------------------------------------------------------------------- helpers
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


# ---------------------------------------------------------------------------------------------------- main
def merge_main(a: argparse.Namespace) -> int:
    """--merge: the suite report (results.md, results.json, suite.png in --out) of runs made by several calls."""
    runs, data, labels = merge_results(a.merge)
    baseline = resolve_baseline(a.baseline, labels, labels)
    suite = suite_summary(runs, data, labels, baseline)
    a.seeds = ",".join(str(s) for s in sorted({r["seed"] for r in runs}))
    for key in ("epochs", "batch"):  # the header states what the runs used, not this call's defaults
        setattr(a, key, "/".join(sorted({str(r.get("train_args", {}).get(key, "?")) for r in runs})))
    out = Path(a.out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    md = suite_markdown(suite, a) + "\n\nMerged from: " + ", ".join(a.merge) + "\n"
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps({"merged": a.merge, "suite": suite}, indent=1, default=str))
    suite_plot(suite, out / "suite.png")
    print(md)
    return 0


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
    p.add_argument("--merge", nargs="+", default=None, metavar="RESULTS.json",
                   help="train nothing: suite tables and plot of the runs in these results.json files, together")
    a = p.parse_args(argv)
    if a.merge:
        return merge_main(a)
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
    model_train = [variants.split_train(m)[1] for m in a.models]  # per-model training arguments (`SPEC+key=v`)
    a.models = [variants.materialize(m, out / "configs") for m in a.models]
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
            for cfg, label, own in zip(a.models, labels, model_train):
                rdir = out / "runs" / dname.replace(":", "-") / f"{label}-s{seed}"
                train_args = {
                    **common,
                    **({"imgsz": dargs["imgsz"]} if "imgsz" in dargs else {}),
                    **({} if a.no_data_overrides else dover),
                    **extra,
                    **own,
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
