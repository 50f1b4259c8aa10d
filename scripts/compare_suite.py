"""The accuracy suite part of scripts/compare.py: build the suite tasks once, then summarise their runs.

`prepare_suite` builds every requested task of `yolo_attn.datasets.suite` (plus a class-agnostic twin of each
context task's val set) and returns compare.py's run sets, one per task and protocol; `suite_summary` and
`suite_markdown` turn finished runs into per-task tables (mean, std, per seed, seeds that found the cue) and the
suite summary (mean over neutral tasks, mean over context tasks, deltas to a baseline model); `suite_plot` draws
every task's per-seed mAP50-95 by model. `merge_results` joins the runs of several results.json files (e.g. calls
that each ran part of the suite) so the tables and plot cover them together (`compare.py --merge`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _stats(xs: list) -> dict | None:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return None
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def _pm(s: dict | None) -> str:
    return "-" if not s else (f"{s['mean']:.3f}±{s['std']:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}")

def suite_protocols(task, protocol: str) -> list[str]:
    """The protocols a suite task runs under: the requested ones it calls meaningful, else its main one."""
    wanted = list(task.protocols) if protocol == "both" else [task.protocols[0] if protocol == "main" else protocol]
    ok = [p for p in wanted if p in task.protocols]
    return ok or [task.protocols[0]]


def agnostic_twin(root: Path, names: tuple[str, ...]) -> Path:
    """A val-only twin of a built dataset with every label class 0 (its own label cache), for single_cls val."""
    twin = root.parent / f"{root.name}-agnostic"
    stamp = (root / "attn_dataset.json").read_text()
    if (twin / "source.json").is_file() and (twin / "source.json").read_text() == stamp:
        return twin / "data.yaml"
    tmp = root.parent / f".{twin.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images" / "val").mkdir(parents=True)
    (tmp / "labels" / "val").mkdir(parents=True)
    for img in sorted((root / "images" / "val").glob("*.jpg")):
        (tmp / "images" / "val" / img.name).symlink_to(img)
        lines = (root / "labels" / "val" / f"{img.stem}.txt").read_text().splitlines()
        agnostic = "".join("0" + ln[ln.index(" ") :] + "\n" for ln in lines)
        (tmp / "labels" / "val" / f"{img.stem}.txt").write_text(agnostic)
    body = "".join(f"  {i}: {n}\n" for i, n in enumerate(names))
    head = f"# class-agnostic twin of {root}\ntrain: images/val\nval: images/val\nnames:\n"
    (tmp / "data.yaml").write_text(head + body)
    (tmp / "source.json").write_text(stamp)
    shutil.rmtree(twin, ignore_errors=True)
    os.replace(tmp, twin)
    return twin / "data.yaml"


def prepare_suite(a: argparse.Namespace) -> list[tuple[str, str, dict, dict]]:
    """Build every requested suite task once; one (label task:protocol, data yaml, overrides, run args) per run set."""
    sys.path.insert(0, str(REPO))
    from yolo_attn.datasets import suite

    names = list(suite.TASKS) if a.suite == "all" else [n.strip() for n in a.suite.split(",") if n.strip()]
    try:
        tasks = [suite.get_task(n) for n in names]
    except ValueError as e:
        raise SystemExit(f"--suite: {e}") from None
    out = []
    for task in tasks:
        kw = dict(n_train=a.n_train, n_val=a.n_val, imgsz=a.data_imgsz or a.suite_imgsz, seed=a.data_seed)
        size = (kw["n_train"] or task.n_train, kw["n_val"] or task.n_val, kw["imgsz"] or task.imgsz)
        tag = "tr{}-va{}-px{}".format(*size) + f"-s{a.data_seed}"
        t = time.perf_counter()
        root = Path(a.datasets_dir).expanduser().resolve() / f"suite-{task.name}-{tag}"
        root = task.build(root, workers=os.cpu_count(), **kw)
        print(f"suite {task.name} ({task.kind}): {root} ({time.perf_counter() - t:.1f}s)", flush=True)
        dargs = {"imgsz": a.suite_imgsz or task.imgsz, "task": task.name, "kind": task.kind, "no_cue_k": task.no_cue_k}
        if task.kind == "context":
            dargs["agnostic_data"] = str(agnostic_twin(root, task.names))
        for proto in suite_protocols(task, a.protocol):
            overrides = dict(suite.PROTOCOLS[proto])
            out.append((f"{task.name}:{proto}", str(root / "data.yaml"), overrides, dict(dargs, protocol=proto)))
    return out


def resolve_baseline(baseline: str | None, models: list[str], labels: list[str]) -> str:
    """The label of --baseline (a label or a model spec as given to --models); default the first model."""
    if baseline is None:
        return labels[0]
    if baseline in labels:
        return baseline
    for m, lab in zip(models, labels):
        if baseline in (m, Path(m).name):
            return lab
    raise SystemExit(f"--baseline {baseline!r} is not one of the models: {', '.join(labels)}")


def found_cue(task, map50_95: float, ceiling: float | None) -> bool:
    """Whether a run found the cue: a localisation ceiling was measured, is above 0, and mAP reached the threshold."""
    return ceiling is not None and ceiling > 0 and map50_95 >= task.found_threshold(ceiling)


def suite_summary(runs: list[dict], data: list[tuple], labels: list[str], baseline: str) -> dict:
    """Per task:protocol and model: mAP50-95 per seed, mean, std, ceiling and seeds that found the cue; plus the
    suite means (neutral tasks, context tasks) and their deltas to the baseline, per protocol and for each task's
    main protocol."""
    sys.path.insert(0, str(REPO))
    from yolo_attn.datasets import suite

    tasks = {}
    for dname, _, _, dargs in data:
        task = suite.get_task(dargs["task"])
        rows = {}
        for m in labels:
            ok = [r for r in runs if r["dataset"] == dname and r["model"] == m and r["status"] == "ok"]
            ok.sort(key=lambda r: r["seed"])
            per_seed = {r["seed"]: r["map50_95"] for r in ok}
            found = None
            if task.kind == "context":
                found = {r["seed"]: found_cue(task, r["map50_95"], r.get("map50_95_agnostic")) for r in ok}
            rows[m] = {
                "per_seed": per_seed,
                "map50_95": _stats(list(per_seed.values())),
                "ceiling": _stats([r.get("map50_95_agnostic") for r in ok]),
                "found": found,
            }
        tasks[dname] = {"task": task.name, "kind": task.kind, "protocol": dargs["protocol"], "imgsz": dargs["imgsz"],
                        "no_cue_k": task.no_cue_k, "main": dargs["protocol"] == task.protocols[0], "models": rows}

    def means(select) -> dict:
        out = {}
        for m in labels:
            row = {}
            for kind in ("neutral", "context"):
                ts = [t for t in tasks.values() if t["kind"] == kind and select(t)]
                vals = [t["models"][m]["map50_95"]["mean"] for t in ts if t["models"][m]["map50_95"]]
                row[kind] = statistics.fmean(vals) if vals and len(vals) == len(ts) else None
                row[f"{kind}_tasks"] = len(ts)
            found = [t["models"][m]["found"] for t in tasks.values() if t["kind"] == "context" and select(t)]
            row["cue_tasks_2of3"] = sum(bool(f) and sum(f.values()) * 3 >= 2 * len(f) for f in found)
            row["cue_seeds"] = f"{sum(sum(f.values()) for f in found if f)}/{sum(len(f) for f in found if f)}"
            out[m] = row
        for m in labels:
            for kind in ("neutral", "context"):
                b, v = out[baseline][kind], out[m][kind]
                out[m][f"{kind}_delta"] = None if b is None or v is None else v - b
        return out

    groups = {"main": means(lambda t: t["main"])}
    for proto in sorted({t["protocol"] for t in tasks.values()}):
        if any(not t["main"] for t in tasks.values() if t["protocol"] == proto):
            groups[proto] = means(lambda t, proto=proto: t["protocol"] == proto)
    return {"baseline": baseline, "tasks": tasks, "summary": groups}


def suite_markdown(suite: dict, a: argparse.Namespace) -> str:
    """Suite summary table(s), then one table per task:protocol."""
    f = lambda v, sign=False: "-" if v is None else (f"{v:+.3f}" if sign else f"{v:.3f}")  # noqa: E731
    out = [f"## Accuracy suite: {a.epochs} ep, batch {a.batch}, seeds {a.seeds}, baseline {suite['baseline']}", ""]
    for group, rows in suite["summary"].items():
        what = "each task's main protocol" if group == "main" else f"protocol {group}"
        out += [f"### Suite summary ({what}): mean mAP50-95 over tasks",
                "| model | neutral | delta | context | delta | context tasks, cue in >= 2/3 seeds | seeds with cue |",
                "|---|--:|--:|--:|--:|--:|--:|"]
        for m, r in rows.items():
            out.append(f"| {m} | {f(r['neutral'])} | {f(r['neutral_delta'], True)} | {f(r['context'])} | "
                       f"{f(r['context_delta'], True)} | {r['cue_tasks_2of3']}/{r['context_tasks']} | "
                       f"{r['cue_seeds']} |")
        out.append("")
    for dname, t in suite["tasks"].items():
        cue = t["kind"] == "context"
        level = f", no-cue level ~ ceiling/{t['no_cue_k']}" if cue else ""
        out += [f"### {dname} ({t['kind']}, {t['imgsz']} px{level})",
                "| model | mAP50-95 | per seed |" + (" ceiling (agnostic) | found cue |" if cue else ""),
                "|---|--:|---|" + ("--:|--:|" if cue else "")]
        for m, r in t["models"].items():
            mark = lambda s: "*" if cue and r["found"].get(s) else ""  # noqa: E731
            seeds = " / ".join(f"{v:.3f}{mark(s)}" for s, v in r["per_seed"].items())
            row = f"| {m} | {_pm(r['map50_95'])} | {seeds or '-'} |"
            if cue:
                row += f" {_pm(r['ceiling'])} | {sum(r['found'].values())}/{len(r['found'])} |"
            out.append(row)
        out.append("")
    out.append("mean±std over seeds of the final model's val mAP50-95. Context tasks: ceiling = the same run's"
               " class-agnostic mAP50-95; a seed found the cue (*) when mAP50-95 >= ceiling (1 + 1/K) / 2.")
    return "\n".join(out)


def merge_results(paths: list[str]) -> tuple[list[dict], list[tuple], list[str]]:
    """(runs, data, labels) of several suite results.json files; a later file's run of the same (task, model, seed)
    replaces an earlier one. Only finished runs are kept."""
    runs, data, labels = {}, {}, []
    for path in paths:
        res = json.loads(Path(path).read_text())
        if "suite" not in res:
            raise SystemExit(f"--merge: {path} is not a suite run (no 'suite' key)")
        for dname, t in res["suite"]["tasks"].items():
            data.setdefault(dname, (dname, None, {}, {"task": t["task"], "protocol": t["protocol"], "imgsz": t["imgsz"]}))
        for r in res["runs"]:
            if r["status"] == "ok":
                runs[(r["dataset"], r["model"], r["seed"])] = r
                labels += [] if r["model"] in labels else [r["model"]]
    return list(runs.values()), list(data.values()), labels


def suite_plot(suite: dict, path: Path) -> None:
    """One panel per task: every seed's mAP50-95 (dots) and the mean (bar) per model; context panels also show the
    cue-found threshold of the mean ceiling (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(REPO))
    from yolo_attn.datasets import suite as tasks_mod

    items = list(suite["tasks"].items())
    cols = min(5, len(items))
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax, (dname, t) in zip(axes.flat, items):
        models = list(t["models"])
        for i, m in enumerate(models):
            r = t["models"][m]
            if r["map50_95"]:
                ax.bar(i, r["map50_95"]["mean"], color=f"C{i % 10}", alpha=0.35)
                ax.plot([i] * len(r["per_seed"]), list(r["per_seed"].values()), "o", color=f"C{i % 10}", ms=4)
            if t["kind"] == "context" and r["ceiling"]:
                level = tasks_mod.get_task(t["task"]).found_threshold(r["ceiling"]["mean"])
                ax.plot([i - 0.4, i + 0.4], [level, level], "k--", lw=0.8)
        ax.set_xticks(range(len(models)), models, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{dname} ({t['kind']}, {t['imgsz']} px)", fontsize=9)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    axes[0][0].set_ylabel("mAP50-95 (dots: seeds; bar: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
