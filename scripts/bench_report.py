"""The benchmark's report: Markdown tables of cost, training, latency and high resolution, each figure with its
ratio to the first model, and a PASS/MISS table of the release targets, which live in targets.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import _common
from _common import Dev, num, short, table

TARGETS = Path(__file__).with_name("targets.json")
SELECTOR = ("section", "size", "batch", "min_size", "cuda")  # the keys of a target that pick its result keys


def env_header(dev: Dev, args) -> dict:
    """The results header: versions and device, and the SDPA backend the run forced."""
    return {**_common.env_header(dev.device), "sdpa": args.sdpa}


def load_targets(path: Path = TARGETS) -> dict:
    return json.loads(path.read_text())


def _group(spec: dict, name: str) -> Callable[[str], bool]:
    try:
        g = spec["groups"][name]
    except KeyError:
        raise SystemExit(f"targets.json: unknown model group {name!r}; groups: {sorted(spec['groups'])}") from None
    return lambda n: (n.startswith(g.get("prefix", "")) and g.get("include", "") in n
                      and not (g.get("exclude") and g["exclude"] in n))


def targets(bench, spec: dict | None = None) -> list[tuple]:
    """The targets that apply to this run, as (label, result key, field, higher_is_better, limit, applies(name)).

    Consecutive targets that pick the same sizes are listed size by size (4096 lat, 4096 mem, 8192 lat, ...).
    """
    spec = spec or load_targets()
    train = {s: f"train@{s}b{b}" for s, b in bench.train_sizes}
    lat = {b: f"lat@{bench.args.latency_imgsz}b{b}" for b in bench.latency_batches}
    hires = {s: f"hires@{s}" for s in bench.hires_sizes}

    def picks(t: dict) -> list[tuple[int, str]]:
        if t.get("cuda") and not bench.dev.cuda:
            return []
        if t["section"] == "lat":
            return [(t["batch"], lat[t["batch"]])] if t["batch"] in lat else []
        keys = train if t["section"] == "train" else hires
        if "size" in t:
            return [(t["size"], keys[t["size"]])] if t["size"] in keys else []
        return [(s, k) for s, k in keys.items() if s >= t.get("min_size", 0)]

    def selector(t: dict) -> dict:
        return {k: v for k, v in t.items() if k in SELECTOR}

    out, i, listed = [], 0, spec["targets"]
    while i < len(listed):
        j = i + 1
        while j < len(listed) and selector(listed[j]) == selector(listed[i]):
            j += 1
        for size, key in picks(listed[i]):
            for t in listed[i:j]:
                if "min" in t:  # a throughput ratio; for a time (gpu_ms), the bound on its inverse
                    higher, limit = (False, 1 / t["min"]) if t["field"] == "gpu_ms" else (True, t["min"])
                else:
                    higher, limit = False, t["max"]
                out.append((t["label"].format(size=size), key, t["field"], higher, limit, _group(spec, t["models"])))
        i = j
    return out


def fmt_value(r: dict) -> str:
    if not isinstance(r, dict):
        return str(r)
    if "error" in r:
        return r["error"]
    parts = []
    for k in ("params_M", "gflops", "img_s", "step_ms", "gpu_ms", "ms", "peak_gib", "compile_s", "max_abs_diff_vs_eager"):
        if r.get(k) is not None:
            v = r[k]
            parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def get(models: dict, name: str, key: str, field: str):
    r = models.get(name, {}).get(key)
    if not isinstance(r, dict):
        return None
    if "error" in r:
        return r["error"]
    return r.get(field)


def cell(models, name, base, key, field) -> str:
    v = get(models, name, key, field)
    if v is None:
        return "-"
    if isinstance(v, str):
        return "OOM" if v == "OOM" else short(v, 48)
    b = get(models, base, key, field)
    ratio = f" ({v / b:.2f}x)" if isinstance(b, (int, float)) and b and name != base else ""
    return num(v) + ratio


def report(bench) -> str:
    R = bench.results
    models = R["models"]
    names = list(models)
    if not names:
        return "no models run"
    base = names[0]
    env = R["env"]
    a = bench.args
    L = [f"## yolo-attn benchmark: {env['device']} | torch {env['torch']} CUDA {env['cuda']} | ultralytics "
         f"{env['ultralytics']} | yolo_attn {env['yolo_attn']} | {env['date']}", "",
         f"Ratios (x) vs {base}. Train: {'AMP fp16' if bench.dev.cuda and not a.no_amp else 'fp32'}, SGD step, "
         f"channels_last={bench.channels_last_train}, deterministic={a.deterministic}"
         f"{f', network compiled (mode={a.train_compile})' if a.train_compile else ''}; latency: fused "
         f"{'fp16' if bench.dev.cuda else 'fp32'} eval, synchronised per call; peak = max_memory_allocated.", ""]
    # Cost + train
    hdr = ["model", "params M", "GFLOPs@640"]
    for s, b in bench.train_sizes:
        hdr += [f"train img/s @{s} b{b}", f"GPU ms/step @{s}", f"peak GiB @{s}"]
    rows = []
    for n in names:
        row = [n, cell(models, n, base, "info", "params_M"), cell(models, n, base, "info", "gflops")]
        for s, b in bench.train_sizes:
            lo, hi = (get(models, n, f"train@{s}b{b}", f) for f in ("ratio_min", "ratio_max"))
            spread = f" [{lo:.2f}–{hi:.2f}]" if isinstance(lo, float) and isinstance(hi, float) and n != base else ""
            gpu = cell(models, n, base, f"train@{s}b{b}", "gpu_ms")
            row += [cell(models, n, base, f"train@{s}b{b}", "img_s") + spread,
                    gpu if gpu != "-" else "n/a",
                    cell(models, n, base, f"train@{s}b{b}", "peak_gib")]
        rows.append(row)
    L += ["### Cost and training step",
          "img/s: median wall step, all models interleaved step by step; [range of the per-round ratio]. GPU ms/step:"
          " the step's kernel time (profiler), i.e. its cost when the GPU, not the host, is the limit."]
    L += table(hdr, rows) + [""]
    # Latency
    inf_cols = [(f"lat@{a.latency_imgsz}b{b}", "ms", f"b{b} ms") for b in bench.latency_batches]
    if bench.latency_batches:
        inf_cols.append((f"lat@{a.latency_imgsz}b{bench.latency_batches[-1]}", "peak_gib",
                         f"b{bench.latency_batches[-1]} GiB"))
    if "cudagraph" in bench.sections:
        inf_cols.append((f"cudagraph@{a.latency_imgsz}b1", "ms", "b1 CUDA graph ms"))
    if "compile" in bench.sections:
        inf_cols += [(f"compile@{a.latency_imgsz}b1", "ms", "b1 compiled ms"), (f"compile@{a.latency_imgsz}b1", "compile_s", "compile s")]
    if "latency" in bench.sections or "cudagraph" in bench.sections or "compile" in bench.sections:
        def lat_cell(n, k, f):
            c = cell(models, n, base, k, f)
            lo, hi = get(models, n, k, "ratio_min"), get(models, n, k, "ratio_max")
            if f == "ms" and n != base and isinstance(lo, float) and isinstance(hi, float):
                c += f" [{lo:.2f}–{hi:.2f}]"
            return c

        rows = [[n] + [lat_cell(n, k, f) for k, f, _ in inf_cols] for n in names]
        L += [f"### {'fp16' if bench.dev.cuda else 'fp32'} inference latency @{a.latency_imgsz}px, fused, ms "
              "(eager: median call, models interleaved; [range of the per-round ratio])"] + table(["model"] + [h for *_, h in inf_cols], rows) + [""]
    # Hires
    if "hires" in bench.sections and bench.hires_sizes:
        hdr = ["model"]
        for s in bench.hires_sizes:
            hdr += [f"{s}px ms", f"{s}px GiB"]
        rows = [[n] + sum(([cell(models, n, base, f"hires@{s}", "ms"),
                            cell(models, n, base, f"hires@{s}", "peak_gib")] for s in bench.hires_sizes), [])
                for n in names]
        L += [f"### High resolution, {'fp16' if bench.dev.cuda else 'fp32'} batch 1"] + table(hdr, rows) + [""]
    # Targets
    spec = load_targets()
    ref = next((n for n in names if n == spec["reference"]), base)
    tg = targets(bench, spec)
    rows = []
    for n in names:
        if not n.startswith(spec["checked_prefix"]):
            continue
        row = [n]
        for label, key, field, higher, limit, applies in tg:
            v, b = get(models, n, key, field), get(models, ref, key, field)
            if not applies(n):
                row.append("")
            elif not isinstance(v, (int, float)) or not isinstance(b, (int, float)) or not b:
                row.append("n/a")
            else:
                r = v / b
                ok = r >= limit if higher else r <= limit
                shown = b / v if field == "gpu_ms" else r  # GPU time shown as a throughput ratio, like img/s
                row.append(f"{'PASS' if ok else 'MISS'} {shown:.2f}")
        rows.append(row)
    if rows and tg:
        L += [f"### Targets vs {ref} (ratio; PASS/MISS)"] + table(["model"] + [t[0] for t in tg], rows) + [""]
    # Section times
    st = R["section_s"]
    parts = [f"{sec} {sum(v.values()):.0f}s" for sec, v in st.items()]
    L.append(f"Section times (all models): {', '.join(parts)}; total {bench.elapsed():.0f}s. "
             f"Files: {bench.out}/benchmark.json, benchmark.md")
    if a.budget_s and any("skipped (budget)" in str(v) for m in models.values() for v in m.values()):
        L.append(f"**Some work skipped: --budget-s {a.budget_s} reached.** Re-run the rest with --sections / fewer models.")
    return "\n".join(L)
