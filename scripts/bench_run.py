"""The benchmark driver: builds every model, runs the sections in order (each measurement guarded, a --budget-s
honoured), times callables interleaved across models, and writes the results and report after each section."""

from __future__ import annotations

import gc
import json
import statistics
import time
import traceback
from pathlib import Path

import torch

from _common import Dev, error_text, ints, is_oom, log, parse_sizes
from bench_infer import InferTiming
from bench_models import build, clear_detect_cache, inference_model, name_of, torch_utils
from bench_report import env_header, fmt_value, report
from bench_train import TrainTiming


class Bench(TrainTiming, InferTiming):
    """One benchmark run over `models` (specs) with the parsed command-line `args`."""

    def __init__(self, args, models: list[str]):
        self.args = args
        self.models = models
        self.dev = Dev(torch.device(args.device))
        self.t_start = time.perf_counter()
        self.results: dict = {"env": env_header(self.dev, args), "args": vars(args), "models": {}, "section_s": {}}
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)

    # --- bookkeeping
    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    def over_budget(self, need_s: float = 0.0) -> bool:
        return bool(self.args.budget_s) and self.elapsed() + need_s > self.args.budget_s

    def run(self, model_name: str, section: str, key: str, fn, *a, need_s: float = 0.0, **k) -> dict:
        """Run one measurement guarded: OOM / errors become the cell's text; time charged to `section`."""
        r = self.results["models"][model_name]
        if self.over_budget(need_s):
            r[key] = {"error": "skipped (budget)"}
            log(f"  [{section}] {model_name} {key}: skipped (--budget-s {self.args.budget_s:.0f} reached)")
            return r[key]
        t0 = time.perf_counter()
        try:
            r[key] = fn(*a, **k)
        except Exception as e:  # noqa: BLE001 - reported in the table, the run goes on
            r[key] = {"error": error_text(e)}
            if not is_oom(e):
                traceback.print_exc(limit=4)
        finally:
            self.dev.cleanup()
        dt = time.perf_counter() - t0
        r[key]["section_s"] = dt
        self.results["section_s"].setdefault(section, {})
        self.results["section_s"][section][model_name] = self.results["section_s"][section].get(model_name, 0) + dt
        log(f"  [{section}] {model_name} {key}: {fmt_value(r[key])}  ({dt:.1f}s, total {self.elapsed():.0f}s)")
        return r[key]

    def save(self, md: str = ""):
        (self.out / "benchmark.json").write_text(json.dumps(self.results, indent=2, default=str))
        if md:
            (self.out / "benchmark.md").write_text(md)

    # --- measurements
    def info(self, base) -> dict:
        p = torch_utils.get_num_params(base)
        gflops = torch_utils.get_flops(base, 640)
        clear_detect_cache(base)
        return {"params_M": p / 1e6, "gflops": gflops}

    # --- driver: section by section over all models, so a tight --budget-s cuts the least important work last
    def build_all(self) -> dict:
        bases = {}
        for cfg in self.models:
            name = name_of(cfg)
            self.results["models"][name] = {"cfg": cfg}
            t0 = time.perf_counter()
            try:
                bases[name] = build(cfg)
            except Exception as e:  # noqa: BLE001
                self.results["models"][name]["info"] = {"error": error_text(e)}
                log(f"  [build] {name}: {error_text(e)}")
                traceback.print_exc(limit=4)
                continue
            self.results["section_s"].setdefault("build", {})[name] = time.perf_counter() - t0
            self.run(name, "info", "info", self.info, bases[name])
        return bases

    def section(self, sec: str, bases: dict):
        a = self.args
        t0 = time.perf_counter()
        log(f"\n== section {sec}  [elapsed {self.elapsed():.0f}s]")
        for name, base in bases.items():
            if sec in ("train", "latency"):
                continue  # measured below, interleaved across models
            jobs = []  # (key, fn(model) -> dict, need_s)
            if sec == "hires":
                for s in self.hires_sizes:
                    jobs.append((f"hires@{s}", lambda m, s=s: self.latency(m, s, 1, a.hires_iters, a.hires_warmup), 0))
            elif sec == "cudagraph":
                jobs.append((f"cudagraph@{a.latency_imgsz}b1", lambda m: self.cudagraph(m, a.latency_imgsz, 1), 0))
            elif sec == "compile":
                jobs.append((f"compile@{a.latency_imgsz}b1", lambda m: self.compiled(m, a.latency_imgsz, 1), 120))
            if self.over_budget():
                for key, fn, need in jobs:
                    self.run(name, sec, key, fn, None)  # recorded as skipped, fn not called
                continue
            try:
                model = inference_model(base, self.dev)
            except Exception as e:  # noqa: BLE001
                for key, _, _ in jobs:
                    self.results["models"][name][key] = {"error": f"fuse failed: {error_text(e)}"}
                log(f"  [{sec}] {name}: fuse failed: {error_text(e)}")
                continue
            if sec == "compile" and hasattr(torch, "_dynamo"):
                torch._dynamo.reset()
            for key, fn, need in jobs:
                self.run(name, sec, key, fn, model, need_s=need)
            del model
            self.dev.cleanup()
        if sec == "train":
            self.train_rounds(bases)
        if sec == "latency":
            self.latency_rounds(bases)
        self.save()
        log(f"== section {sec} done in {time.perf_counter() - t0:.0f}s  [elapsed {self.elapsed():.0f}s]")

    def interleaved(self, calls: dict, rounds: int, per_round: int, what: str) -> dict:
        """Time `calls` (name -> zero-argument callable) interleaved call by call: `rounds` rounds of `per_round`
        calls of each, order reversed every other round, garbage collection between rounds only.

        Host-speed swings slower than one pass over the models hit every model alike, so ratios survive them.
        Returns name -> {"ms": median of all calls, "round_ms": the median of each round, "n": calls timed}.
        """
        times: dict = {name: [] for name in calls}
        order = list(calls)
        for rnd in range(rounds):
            if self.over_budget():
                log(f"  {what}: --budget-s reached after {rnd} rounds")
                break
            this_round: dict = {name: [] for name in calls}
            gc.collect()
            gc.disable()
            try:
                for _ in range(per_round):
                    for name in order if rnd % 2 == 0 else order[::-1]:
                        this_round[name].append(self.dev.time_ms(calls[name]))
            finally:
                gc.enable()
            for name, t in this_round.items():
                times[name].append(t)
        return {name: {"ms": statistics.median(t for r in rs for t in r), "round_ms": [statistics.median(r) for r in rs],
                       "n": sum(map(len, rs))} for name, rs in times.items() if rs}

    def main(self) -> int:
        a = self.args
        self.sections = set(a.sections.split(","))
        if a.compile:
            self.sections.add("compile")
        hires = a.hires if a.hires is not None else self.dev.cuda
        if not hires:
            self.sections.discard("hires")
        if not self.dev.cuda:
            self.sections.discard("cudagraph")
        self.train_sizes = parse_sizes(a.train_sizes)
        self.latency_batches = ints(a.latency_batches)
        self.hires_sizes = ints(a.hires_sizes)
        self.channels_last_train = {"auto": self.dev.cuda, "on": True, "off": False}[a.channels_last]
        env = self.results["env"]
        log("# yolo-attn benchmark  " + "  ".join(f"{k}={v}" for k, v in env.items()))
        log(f"# sections={sorted(self.sections)} train_sizes={self.train_sizes} latency={a.latency_imgsz}px "
            f"b{self.latency_batches} hires={self.hires_sizes if 'hires' in self.sections else 'off'} "
            f"amp={self.dev.cuda and not a.no_amp} channels_last(train)={self.channels_last_train} "
            f"compile(train)={a.train_compile or 'off'} "
            f"deterministic(train)={a.deterministic} budget={f'{a.budget_s:.0f}s' if a.budget_s else 'none'}")
        bases = self.build_all()
        self.save()
        # Order: most important first; CUDA-graph capture and compile last (a failure there is the likeliest to
        # upset the CUDA context, and compile is slow).
        for sec in ("train", "latency", "hires", "cudagraph", "compile"):
            if sec in self.sections:
                self.section(sec, bases)
        md = report(self)
        self.save(md)
        log("\n" + md)
        return 0
