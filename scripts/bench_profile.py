"""`benchmark.py --profile MODEL`: one training step (or, with --profile-infer, one fused eval forward) under
torch.profiler: the top kernels (ops on CPU), the work inside each yolo_attn module (forward under its range, backward
through its autograd nodes), host time per op, and the warnings a step raises."""

from __future__ import annotations

import json
import statistics
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from _common import Dev, log, parse_sizes, short, table
from bench_models import EvalStep, TrainStep, build, name_of, set_deterministic
from bench_report import env_header


def top_level_plugin_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    out = []
    for name, m in model.named_modules():
        if type(m).__module__.startswith("yolo_attn") and not any(name.startswith(p + ".") for p, _ in out):
            out.append((name, m))
    return out


def profile_mode(args) -> int:
    from torch.autograd import DeviceType
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    dev = Dev(torch.device(args.device))
    env = env_header(dev, args)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = args.profile
    imgsz, batch = parse_sizes(args.train_sizes)[0]
    log("# yolo-attn benchmark --profile  " + "  ".join(f"{k}={v}" for k, v in env.items()))
    channels_last = {"auto": dev.cuda, "on": True, "off": False}[args.channels_last]
    if args.profile_infer:  # one fused eval forward, as the latency section times it
        log(f"# {cfg}: one {'fp16' if dev.cuda else 'fp32'} eval forward at {imgsz}px batch {batch}")

        step = EvalStep(build(cfg), dev, imgsz, batch)
    else:
        log(f"# {cfg}: one AMP training step at {imgsz}px batch {batch}")
        set_deterministic(args.deterministic)
        step = TrainStep(build(cfg), dev, imgsz, batch, not args.no_amp, channels_last)

    # A record_function range around each top-level yolo_attn module's forward.
    open_ranges: dict[int, list] = {}
    mods = top_level_plugin_modules(step.model)
    handles = []
    for name, m in mods:
        label = f"yolo_attn::{name} {type(m).__name__}"

        def pre(mod, inp, label=label):
            rf = record_function(label)
            rf.__enter__()
            open_ranges.setdefault(id(mod), []).append(rf)

        def post(mod, inp, out):
            open_ranges[id(mod)].pop().__exit__(None, None, None)

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    for _ in range(max(1, args.train_warmup)):
        step()
    dev.sync()
    wall_ms = statistics.median(dev.time_ms(step) for _ in range(max(3, args.train_steps)))  # hooks on, profiler off
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.cuda else [])
    with profile(activities=acts) as prof:
        step()
        dev.sync()
    for h in handles:
        h.remove()
    with warnings.catch_warnings(record=True) as caught:  # warnings raised each step cost host time too
        warnings.simplefilter("always")
        step()
        dev.sync()
    set_deterministic(False)
    if args.trace:
        prof.export_chrome_trace(str(out_dir / f"profile_{name_of(cfg)}.trace.json"))

    events = prof.events()
    unit = "kernel" if dev.cuda else "op"

    def leaf_work(e):
        """(name, us) of the device kernels launched by event e itself (CUDA), or of e itself if an aten op (CPU)."""
        if dev.cuda:
            return [(k.name, k.duration) for k in (getattr(e, "kernels", None) or [])]
        if e.name.startswith("aten::"):  # CPU: every aten op with its self time (children counted on their own)
            return [(e.name, e.self_cpu_time_total)]
        return []

    def subtree(e):
        stack = [e]
        while stack:
            x = stack.pop()
            yield x
            stack.extend(x.cpu_children)

    def tally(work) -> dict[str, list]:
        """{name: [calls, total us]} of (name, us) pairs."""
        out: dict[str, list] = {}
        for n, us in work:
            t = out.setdefault(n, [0, 0.0])
            t[0] += 1
            t[1] += us
        return out

    # Top kernels of the whole step.
    totals = tally(w for e in events for w in leaf_work(e))
    if dev.cuda and not totals:  # older/newer profiler layouts: fall back to device-side events
        totals = tally((e.name, e.time_range.elapsed_us()) for e in events if e.device_type == DeviceType.CUDA)
    grand = sum(v[1] for v in totals.values()) or 1.0
    top = sorted(totals.items(), key=lambda kv: -kv[1][1])[:25]

    # Attribution: forward = under the module's range; backward = autograd nodes whose sequence number was
    # created by a forward op under that range.
    per_mod = []
    fwd_seq_all: dict[int, str] = {}
    # The CPU-side ranges only: on CUDA the profiler also records each range as a GPU-side annotation event.
    ranges = [e for e in events if e.name.startswith("yolo_attn::") and e.device_type == DeviceType.CPU]
    for r in ranges:
        work = [w for x in subtree(r) for w in leaf_work(x)]
        for x in subtree(r):
            if getattr(x, "sequence_nr", -1) is not None and x.sequence_nr >= 0:
                fwd_seq_all[x.sequence_nr] = r.name
        per_mod.append({"module": r.name, "fwd_n": len(work), "fwd_us": sum(u for _, u in work), "bwd_n": 0, "bwd_us": 0.0,
                        "fwd_host_us": r.cpu_time_total, "bwd_host_us": 0.0, "fwd_work": work, "bwd_work": [],
                        "fwd_nodes": [(c.name, c.cpu_time_total, len([w for y in subtree(c) for w in leaf_work(y)]))
                                      for c in r.cpu_children]})
    by_name = {p["module"]: p for p in per_mod}
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function") and e.sequence_nr in fwd_seq_all:
            p = by_name[fwd_seq_all[e.sequence_nr]]
            work = [w for x in subtree(e) for w in leaf_work(x)]
            p["bwd_n"] += len(work)
            p["bwd_us"] += sum(u for _, u in work)
            p["bwd_host_us"] += e.cpu_time_total
            p["bwd_work"] += work
            p.setdefault("bwd_nodes", []).append((e.name.removeprefix("autograd::engine::evaluate_function: "), e.cpu_time_total, len(work)))
    attn_kernels = sorted({n for n in totals if any(s in n.lower() for s in ("flash", "fmha", "efficient", "cudnn", "sdpa", "attention"))})

    what = f"{'fp16' if dev.cuda else 'fp32'} eval forward" if args.profile_infer else "training step"
    L = [f"## Profile of one {what}: {name_of(cfg)} @{imgsz}px b{batch} ({env['device']}, torch {env['torch']})", "",
         f"Total {unit} time {grand / 1e3:.2f} ms over {sum(v[0] for v in totals.values())} {unit}s; the step takes "
         f"{wall_ms:.2f} ms wall (median, no profiler), so the device is busy {100 * grand / 1e3 / wall_ms:.0f}% of it.", "",
         f"### Top 25 {unit}s by total time"]
    L += table(["#", "name", "calls", "total ms", "%"],
               [[str(i + 1), short(n, 110), str(c), f"{us / 1e3:.3f}", f"{100 * us / grand:.1f}"] for i, (n, (c, us)) in enumerate(top)])
    L += ["", f"### {unit}s inside yolo_attn modules (forward: under the module; backward: its autograd nodes)",
          "host ms: CPU time spent issuing them (under the profiler, which inflates it; compare rows, not runs)."]
    rows = [[p["module"].removeprefix("yolo_attn::"), str(p["fwd_n"]), f"{p['fwd_us'] / 1e3:.3f}", str(p["bwd_n"]),
             f"{p['bwd_us'] / 1e3:.3f}", f"{p['fwd_host_us'] / 1e3:.3f}", f"{p['bwd_host_us'] / 1e3:.3f}"] for p in per_mod]
    tot_n = sum(p["fwd_n"] + p["bwd_n"] for p in per_mod)
    tot_us = sum(p["fwd_us"] + p["bwd_us"] for p in per_mod)
    rows.append(["**all yolo_attn**", str(sum(p["fwd_n"] for p in per_mod)), f"{sum(p['fwd_us'] for p in per_mod) / 1e3:.3f}",
                 str(sum(p["bwd_n"] for p in per_mod)), f"{sum(p['bwd_us'] for p in per_mod) / 1e3:.3f}",
                 f"{sum(p['fwd_host_us'] for p in per_mod) / 1e3:.3f}", f"{sum(p['bwd_host_us'] for p in per_mod) / 1e3:.3f}"])
    L += table(["module", f"fwd {unit}s", "fwd ms", f"bwd {unit}s", "bwd ms", "fwd host ms", "bwd host ms"], rows)
    for p in per_mod[:1]:  # the first block's work, kernel by kernel: where a block's launches go
        for part in ("fwd", "bwd"):
            agg = tally((short(n, 100), us) for n, us in p[f"{part}_work"])
            L += ["", f"{p['module'].removeprefix('yolo_attn::')}, {part}: {len(p[f'{part}_work'])} {unit}s"]
            L += table([unit, "calls", "us"], [[n, str(c), f"{us:.0f}"] for n, (c, us) in sorted(agg.items(), key=lambda kv: -kv[1][1])])
            nodes = p.get(f"{part}_nodes", [])
            L += ["", f"{p['module'].removeprefix('yolo_attn::')}, {part}: host time by "
                  f"{'top-level op' if part == 'fwd' else 'autograd node'} ({len(nodes)})"]
            L += table(["op" if part == "fwd" else "node", "host us", unit + "s"],
                       [[short(n, 80), f"{us:.0f}", str(k)] for n, us, k in nodes])
    L += ["", f"yolo_attn share: {tot_n} {unit}s, {tot_us / 1e3:.2f} ms = {100 * tot_us / grand:.1f}% of the step's {unit} time.",
          f"Attention {unit}s seen: {', '.join(short(k, 80) for k in attn_kernels) or 'none'}"]
    if not mods:
        L.append("(model has no yolo_attn modules)")
    seen: dict[str, int] = {}
    for w in caught:
        key = short(f"{w.category.__name__}: {w.message}", 160)
        seen[key] = seen.get(key, 0) + 1
    L += ["", f"Warnings raised by one step: {len(caught)}" + "".join(f"\n- {n}x {k}" for k, n in seen.items())]
    md = "\n".join(L)
    stem = f"profile_{name_of(cfg)}"
    (out_dir / f"{stem}.md").write_text(md)
    (out_dir / f"{stem}.json").write_text(json.dumps(
        {"env": env, "args": vars(args), "top": [{"name": n, "calls": c, "us": us} for n, (c, us) in top],
         "modules": [{k: v for k, v in p.items() if not k.endswith(("_work", "_nodes"))} for p in per_mod], "total_us": grand, "wall_ms": wall_ms, "attention_kernels": attn_kernels}, indent=2, default=str))
    log("\n" + md)
    return 0
