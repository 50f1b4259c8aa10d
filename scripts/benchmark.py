"""Side-by-side cost of YOLO models with and without yolo-attn: params, GFLOPs, AMP training step, fp16 latency.

For each model, in one process:
  info      params and GFLOPs at 640 (Ultralytics' get_flops)                                    (always)
  train     AMP (fp16 autocast + GradScaler) training step = forward + Ultralytics' detection loss + backward
            + SGD step (grad-clip 10 and unscale as Ultralytics' trainer), random images and a fixed set of random
            boxes. Every model's step stays resident and the models are interleaved step by step (--rounds rounds
            of --train-steps steps, order reversed every other round): images/s of the median step, the range of
            the per-round ratio to the first model, peak memory, and the step's GPU time (summed kernel time from
            torch.profiler: its cost when the GPU, not the host, is the limit).
            Like `yolo train` defaults: channels_last on CUDA, deterministic mode (warn_only) on.
  latency   fp16 inference (model.fuse().half().eval(), inference_mode, like Ultralytics predict) at
            --latency-batches, eager, synchronised per call, models interleaved call by call; median.
  cudagraph batch-1 latency of a torch.cuda.CUDAGraph capture of the same eval forward (CUDA only).
  compile   batch-1 latency under torch.compile(mode=--compile-mode) (only with --compile: compiling is slow).
  hires     fp16 batch-1 latency and peak memory at --hires-sizes (on by default on CUDA; --no-hires to skip).
Every figure also as a ratio to the first model. A PASS/MISS table checks the yolov8n-attn rows against the
targets (vs yolov8n). A failing section (OOM, compile error, ...) is reported as "OOM"/"error: ..." and the run
goes on. --budget-s stops starting new work when the time is up, so the tables always print.

Output: progress lines, then compact Markdown tables (the end of stdout); full JSON + Markdown in --out
(default $OUT, else ./bench_out), rewritten after each model.

  python scripts/benchmark.py                                   # the default 7 models, all sections
  python scripts/benchmark.py yolov8n.yaml configs/yolov8n-attn.yaml --sections train,latency
  python scripts/benchmark.py configs/yolov8n-attn.yaml configs/yolov8n-attn.yaml:head_dim=32,kv_tokens=1600
                                                                # variants: SelfAttentionBlock args overridden
  python scripts/benchmark.py yolov8n.yaml configs/yolov8n-attn.yaml configs/yolov8n-attn.yaml@66f4337
                                                                # ... and the attention code of a git revision
  python scripts/benchmark.py --profile configs/yolov8n-attn.yaml   # top CUDA kernels of one training step
  python scripts/benchmark.py --profile configs/yolov8n-attn.yaml --profile-infer   # ... of one eval forward
  python scripts/benchmark.py --device cpu --quick                  # CPU smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a source checkout without installing

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import ultralytics  # noqa: E402
import ultralytics.nn.tasks  # noqa: E402,F401  (before yolo_attn: registration then happens at import)
import yolo_attn  # noqa: E402
from yolo_attn.integration import register  # noqa: E402

sys.path.insert(0, str(REPO / "scripts"))
import refimpl  # noqa: E402
import variants  # noqa: E402

register()  # idempotent; makes sure get_flops / config search / YAML names are in place
from ultralytics.cfg import get_cfg  # noqa: E402
from ultralytics.nn.tasks import DetectionModel  # noqa: E402
from ultralytics.utils import DEFAULT_CFG  # noqa: E402
from ultralytics.utils import torch_utils  # noqa: E402  (torch_utils.get_flops read at call time: yolo_attn wraps it)

GiB = 1024**3
VARIANT_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "yolo_attn_bench_variants"
DEFAULT_MODELS = [
    "yolov8n.yaml",
    "configs/yolov8n-attn.yaml",
    "configs/yolov8n-attn-p45.yaml",
    "configs/yolov8n-attn-standard.yaml",
    "configs/yolov8n-attn-efficient.yaml",
    "yolo11n.yaml",
    "yolo12n.yaml",
]
QUICK_MODELS = ["yolov8n.yaml", "configs/yolov8n-attn.yaml", "configs/yolov8n-attn-p45.yaml"]
ALL_SECTIONS = ("train", "latency", "cudagraph", "compile", "hires")


def log(*a):
    print(*a, flush=True)


def short(s, n=90) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def is_oom(e: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    text = str(e)
    return isinstance(e, oom_type) or "out of memory" in text.lower() or "CUBLAS_STATUS_ALLOC_FAILED" in text


def error_text(e: BaseException) -> str:
    if is_oom(e):
        return "OOM"
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"error: {type(e).__name__}: {short(first, 160)}"


def name_of(cfg: str) -> str:
    path, rev = refimpl.split_rev(cfg)
    return variants.label(path) + (f"@{rev}" if rev else "")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'640:32,1280:8' -> [(640, 32), (1280, 8)]."""
    out = []
    for part in filter(None, text.split(",")):
        s, b = part.split(":")
        out.append((int(s), int(b)))
    return out


def ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


# ------------------------------------------------------------------------------------------------- device helpers
class Dev:
    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated(self.device) / GiB if self.cuda else None

    def cleanup(self):
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def time_ms(self, fn) -> float:
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

    def measure(self, fn, warmup: int, iters: int, max_s: float, min_iters: int = 3) -> dict:
        """Warm up, then time `iters` calls (fewer if one call is slow: about max_s seconds in all); median ms."""
        t0 = time.perf_counter()
        first = None
        for i in range(max(1, warmup)):
            t = self.time_ms(fn)
            first = t if first is None else min(first, t)
        n = iters
        if first and first * iters / 1e3 > max_s:
            n = max(min_iters, int(max_s * 1e3 / first))
        times = [self.time_ms(fn) for _ in range(n)]
        return {"ms": statistics.median(times), "iters": n, "warmup_s": time.perf_counter() - t0}


def profiled_events(fn, dev: Dev):
    """Run `fn` once under torch.profiler (CPU and CUDA activities), synchronised; return the profiler's events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.cuda else [])) as prof:
        fn()
        dev.sync()
    return prof.events()


def set_deterministic(on: bool):
    """What Ultralytics' trainer does with deterministic=True (its default), and undoes after training."""
    if on:
        torch_utils.init_seeds(0, deterministic=True)
    else:
        torch_utils.unset_deterministic()


# ------------------------------------------------------------------------------------------------- model pieces
def build(spec: str) -> nn.Module:
    """A DetectionModel from a YAML or a variant spec (`configs/yolov8n-attn.yaml:head_dim=64`, see variants.py),
    optionally `...@REV`: its attention as at git revision REV (see refimpl.py)."""
    spec, rev = refimpl.split_rev(spec)
    model = DetectionModel(variants.materialize(spec, VARIANT_DIR), nc=80, verbose=False)
    if rev:
        refimpl.use_revision(model, rev)
    model.args = get_cfg(DEFAULT_CFG)  # hyperparameters the loss reads (box, cls, dfl gains)
    return model


def make_batch(batch: int, imgsz: int, device, boxes_per_image: int = 8, seed: int = 0) -> dict:
    """Ultralytics' training batch dict: images in [0, 1], normalised xywh boxes, fixed by the seed."""
    g = torch.Generator().manual_seed(seed)
    n = batch * boxes_per_image
    xy = torch.rand(n, 2, generator=g) * 0.8 + 0.1
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.02
    return {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g).to(device),
        "batch_idx": torch.arange(batch).repeat_interleave(boxes_per_image).float().to(device),
        "cls": torch.randint(0, 80, (n, 1), generator=g).float().to(device),
        "bboxes": torch.cat((xy, wh), 1).to(device),
    }


class TrainStep:
    """One Ultralytics-style AMP training step on a copy of the model."""

    def __init__(
        self, base: nn.Module, dev: Dev, imgsz: int, batch: int, amp: bool, channels_last: bool, compile_mode: str = ""
    ):
        self.dev = dev
        self.model = copy.deepcopy(base).to(dev.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.model.criterion = None
        # `yolo train compile=...`: the network (images in, predictions out) compiled, the loss eager.
        self.compiled = torch.compile(self.model, mode=compile_mode) if compile_mode else None
        self.amp = amp and dev.cuda
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.batch = make_batch(batch, imgsz, dev.device)

    def __call__(self):
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp) if self.dev.cuda else contextlib.nullcontext():
            if self.compiled is not None:  # as Ultralytics' trainer does with compile on
                loss, _ = self.model.loss(self.batch, self.compiled(self.batch["img"]))
            else:
                loss, _ = self.model(self.batch)  # BaseModel.forward(dict) -> self.loss(batch): forward + criterion
            loss = loss.sum()
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=10.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)


class EvalStep:
    """One fused eval forward, as the latency section times it (a callable with `.model`, like TrainStep)."""

    def __init__(self, base: nn.Module, dev: Dev, imgsz: int, batch: int):
        self.model = inference_model(base, dev)
        self.x = rand_image(batch, imgsz, dev)

    def __call__(self):
        with torch.inference_mode():
            self.model(self.x)


def clear_detect_cache(model: nn.Module) -> nn.Module:
    """Drop the anchors a head cached while get_flops ran it: a fresh model, as a loaded checkpoint would be.

    (Left in place, they make torch.compile split the model into per-layer graphs and recompile per shape.)
    """
    for m in model.modules():
        if hasattr(type(m), "shape") and "shape" in vars(m) and hasattr(m, "anchors"):
            for attr in ("shape", "anchors", "strides"):
                vars(m).pop(attr, None)
    return model


def inference_model(base: nn.Module, dev: Dev) -> nn.Module:
    """Fused, fp16 (CUDA) eval model, as Ultralytics' predictor (AutoBackend) prepares a .pt model."""
    m = clear_detect_cache(copy.deepcopy(base)).to(dev.device)
    m = m.fuse(verbose=False)
    m = m.half() if dev.cuda else m.float()
    return m.eval()


def rand_image(batch, imgsz, dev: Dev):
    return torch.rand(batch, 3, imgsz, imgsz, device=dev.device, dtype=torch.float16 if dev.cuda else torch.float32)


def first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        out = next(iter(out.values()))
    return out


# ------------------------------------------------------------------------------------------------- benchmark
class Bench:
    def __init__(self, args):
        self.args = args
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

    def gpu_step_ms(self, step) -> float | None:
        """Device time of one training step: the sum of its kernels' durations (torch.profiler), launch gaps excluded.

        Unlike wall time this hardly varies between runs, and it is what a step would take if the host could issue
        kernels as fast as the GPU runs them (a faster CPU, CUDA graphs, compile): the GPU-bound cost.
        """
        from torch.autograd import DeviceType

        try:
            events = profiled_events(step, self.dev)
            by_kernels = sum(k.duration for e in events for k in (getattr(e, "kernels", None) or []))
            by_device = sum(e.time_range.elapsed_us() for e in events if e.device_type == DeviceType.CUDA)
            us = max(by_kernels, by_device)
            return us / 1e3 if us else None
        except Exception as e:  # noqa: BLE001 - a profiler quirk must not cost the timing results
            log(f"  [train] GPU time not measured: {error_text(e)}")
            return None

    def latency(self, model, imgsz, batch, iters, warmup) -> dict:
        x = rand_image(batch, imgsz, self.dev)
        self.dev.reset_peak()
        with torch.inference_mode():
            m = self.dev.measure(lambda: model(x), warmup, iters, self.args.max_sample_s)
        return {"ms": m["ms"], "peak_gib": self.dev.peak_gib(), "iters": m["iters"]}

    def cudagraph(self, model, imgsz, batch) -> dict:
        if not self.dev.cuda:
            return {"error": "n/a (CUDA only)"}
        a = self.args
        x = rand_image(batch, imgsz, self.dev)
        with torch.inference_mode():
            ref = first_tensor(model(x)).clone()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    model(x)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                out = model(x)
            g.replay()
            torch.cuda.synchronize()
            diff = (first_tensor(out).float() - ref.float()).abs().max().item()
            m = self.dev.measure(g.replay, 5, a.latency_iters * 2, a.max_sample_s)
        del g, out
        return {"ms": m["ms"], "max_abs_diff_vs_eager": diff, "iters": m["iters"]}

    def compiled(self, model, imgsz, batch) -> dict:
        x = rand_image(batch, imgsz, self.dev)
        with torch.inference_mode():
            # One eager call first: the head then has its anchors for this shape, so tracing skips make_anchors,
            # whose tensor->scalar read otherwise breaks the graph inside DetectionModel's layer loop and makes
            # dynamo fall back to compiling every layer separately (with a recompile per input shape).
            model(x)
            cm = torch.compile(model, mode=self.args.compile_mode)
            t0 = time.perf_counter()
            cm(x)
            self.dev.sync()
            compile_s = time.perf_counter() - t0
            m = self.dev.measure(lambda: cm(x), 3, self.args.latency_iters, self.args.max_sample_s)
        return {"ms": m["ms"], "compile_s": compile_s, "iters": m["iters"]}

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

    def train_rounds(self, bases: dict):
        """Time training with every model's step resident, interleaved: --rounds rounds of --train-steps steps each,
        model order reversed every other round; each model's figure is the median step over all rounds.

        Timing models one after another lets clock ramp-up, host jitter and allocator growth land on whichever model
        runs in a slow stretch; interleaving short stretches spreads that over every model alike. The spread of the
        per-round medians is kept, so a ratio can be judged against the noise. Peak memory is each model's own:
        measured while it warms up, minus what the other (idle) steps hold.
        """
        a = self.args
        set_deterministic(a.deterministic)
        try:
            for imgsz, batch in self.train_sizes:
                key = f"train@{imgsz}b{batch}"
                steps, peaks = {}, {}
                for name, base in bases.items():
                    def setup(name=name, base=base):
                        before = torch.cuda.memory_allocated(self.dev.device) if self.dev.cuda else 0
                        self.dev.reset_peak()
                        st = TrainStep(base, self.dev, imgsz, batch, not a.no_amp, self.channels_last_train,
                                       a.train_compile)
                        for _ in range(max(1, a.train_warmup)):
                            st()
                        self.dev.sync()
                        peak = (torch.cuda.max_memory_allocated(self.dev.device) - before) / GiB if self.dev.cuda else None
                        steps[name], peaks[name] = st, peak
                        return {"peak_gib": peak, "warmup_steps": max(1, a.train_warmup)}
                    self.run(name, "train", key, setup)
                stats = self.interleaved(steps, a.rounds, a.train_steps, f"[train] {key}")
                base_rounds = next(iter(stats.values()))["round_ms"] if stats else []
                for name, st in stats.items():
                    ms, round_ms = st["ms"], st["round_ms"]
                    ratios = [b / m for b, m in zip(base_rounds, round_ms)]  # throughput ratio, round by round
                    gpu_ms = self.gpu_step_ms(steps[name]) if self.dev.cuda else None
                    self.results["models"][name][key] = {
                        "img_s": batch / (ms / 1e3),
                        "img_s_min": min(batch / (m / 1e3) for m in round_ms),
                        "img_s_max": max(batch / (m / 1e3) for m in round_ms),
                        "ratio_min": min(ratios),
                        "ratio_max": max(ratios),
                        "step_ms": ms,
                        "round_ms": round_ms,
                        "gpu_ms": gpu_ms,
                        "peak_gib": peaks[name],
                        "rounds": len(round_ms),
                        "steps": st["n"],
                    }
                    log(f"  [train] {name} {key}: {fmt_value(self.results['models'][name][key])} "
                        f"(per-round ratio {min(ratios):.2f}-{max(ratios):.2f})")
                del steps
                self.dev.cleanup()
        finally:
            set_deterministic(False)

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

    def latency_rounds(self, bases: dict):
        """Latency per batch size: each model's peak memory alone, then timing interleaved call by call over
        --rounds rounds (order reversed every other round), median over all calls.

        Eager batch-1 latency is bound by the host issuing kernels, so it drifts with host load; interleaving puts
        every model through the same stretches, as train_rounds does for training.
        """
        a = self.args
        per_round = max(1, a.latency_iters // a.rounds)
        for b in self.latency_batches:
            key = f"lat@{a.latency_imgsz}b{b}"
            x = rand_image(b, a.latency_imgsz, self.dev)
            models = {}
            for name, base in bases.items():
                def setup(name=name, base=base):
                    # Its own peak: weights, input and activations, not the models set up before it.
                    others = torch.cuda.memory_allocated(self.dev.device) - x.nbytes if self.dev.cuda else 0
                    m = inference_model(base, self.dev)
                    self.dev.reset_peak()
                    with torch.inference_mode():
                        for _ in range(max(1, a.latency_warmup)):
                            m(x)
                    self.dev.sync()
                    models[name] = m
                    peak = (torch.cuda.max_memory_allocated(self.dev.device) - others) / GiB if self.dev.cuda else None
                    return {"peak_gib": peak}
                self.run(name, "latency", key, setup)
            with torch.inference_mode():
                calls = {name: (lambda m=m: m(x)) for name, m in models.items()}
                stats = self.interleaved(calls, a.rounds, per_round, f"[latency] {key}")
            base_rounds = next(iter(stats.values()))["round_ms"] if stats else []
            for name, st in stats.items():
                ratios = [m / b for b, m in zip(base_rounds, st["round_ms"])]  # time ratio, round by round
                r = self.results["models"][name][key]
                r.update(ms=st["ms"], ratio_min=min(ratios), ratio_max=max(ratios), iters=st["n"])
                log(f"  [latency] {name} {key}: {fmt_value(r)} (per-round ratio {min(ratios):.2f}-{max(ratios):.2f})")
            del models, x
            self.dev.cleanup()

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


# ------------------------------------------------------------------------------------------------- report
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


def num(v: float) -> str:
    """Three significant figures without exponents: 678, 30.4, 4.03, 0.193."""
    if v == 0 or not math.isfinite(v):
        return str(v)
    digits = max(0, 2 - int(math.floor(math.log10(abs(v)))))
    return f"{v:.{digits}f}"


def cell(models, name, base, key, field) -> str:
    v = get(models, name, key, field)
    if v is None:
        return "-"
    if isinstance(v, str):
        return "OOM" if v == "OOM" else short(v, 48)
    b = get(models, base, key, field)
    ratio = f" ({v / b:.2f}x)" if isinstance(b, (int, float)) and b and name != base else ""
    return num(v) + ratio


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


# Targets for the yolov8n-attn rows vs yolov8n: (label, key, field, higher_is_better, limit, applies(model name)).
def targets(bench) -> list[tuple]:
    a = bench.args
    t = []
    tr = {s: f"train@{s}b{b}" for s, b in bench.train_sizes}
    main_attn = lambda n: n.startswith("yolov8n-attn") and "p45" not in n  # noqa: E731
    p45 = lambda n: "p45" in n  # noqa: E731
    if 640 in tr:
        t.append(("train@640 >=0.90", tr[640], "img_s", True, 0.90, main_attn))
        t.append(("train@640 >=0.95 (P4+P5)", tr[640], "img_s", True, 0.95, p45))
    if 1280 in tr:
        t.append(("train@1280 >=0.85", tr[1280], "img_s", True, 0.85, main_attn))
    if bench.dev.cuda:  # the same targets on GPU time: the ratio a host that keeps up with the GPU would see
        if 640 in tr:
            t.append(("GPU-bound train@640 >=0.90", tr[640], "gpu_ms", False, 1 / 0.90, main_attn))
            t.append(("GPU-bound @640 >=0.95 (P4+P5)", tr[640], "gpu_ms", False, 1 / 0.95, p45))
        if 1280 in tr:
            t.append(("GPU-bound train@1280 >=0.85", tr[1280], "gpu_ms", False, 1 / 0.85, main_attn))
    for s in tr:
        t.append((f"train mem@{s} <=1.15", tr[s], "peak_gib", False, 1.15, lambda n: True))
    lat = {b: f"lat@{a.latency_imgsz}b{b}" for b in bench.latency_batches}
    if 32 in lat:
        t.append(("lat b32 <=1.25", lat[32], "ms", False, 1.25, lambda n: True))
    if 1 in lat:
        t.append(("lat b1 <=1.30", lat[1], "ms", False, 1.30, lambda n: True))
    for s in bench.hires_sizes:
        if s >= 4096:
            t.append((f"{s}px lat <=1.5", f"hires@{s}", "ms", False, 1.5, lambda n: True))
            t.append((f"{s}px mem <=1.2", f"hires@{s}", "peak_gib", False, 1.2, lambda n: True))
    return t


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
    ref = next((n for n in names if n == "yolov8n"), base)
    tg = targets(bench)
    rows = []
    for n in names:
        if not n.startswith("yolov8n-attn"):
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


# ------------------------------------------------------------------------------------------------- profile mode
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


# ------------------------------------------------------------------------------------------------- env / args
def env_header(dev: Dev, args) -> dict:
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(dev.device) if dev.cuda else (platform.processor() or "cpu"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "ultralytics": ultralytics.__version__,
        "yolo_attn": getattr(yolo_attn, "__version__", "n/a"),
        "python": platform.python_version(),
        "sdpa": args.sdpa,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", help="model YAMLs (default: the 7 of the module docstring; --quick: 3)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1-2 steps, 3 models: a smoke test")
    p.add_argument("--sections", default="train,latency,cudagraph,hires", help=f"comma list of {ALL_SECTIONS}")
    p.add_argument("--train-sizes", default=None, help="imgsz:batch list (default 640:32,1280:8)")
    p.add_argument("--train-steps", type=int, default=None, help="timed steps per model per round (default 8)")
    p.add_argument("--train-warmup", type=int, default=None, help="warm-up steps (default 3)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved train timing rounds, order reversed each round (default 6)")
    p.add_argument("--latency-imgsz", type=int, default=None, help="default 640")
    p.add_argument("--latency-batches", default=None, help="default 1,32")
    p.add_argument("--latency-iters", type=int, default=None, help="default 50")
    p.add_argument("--latency-warmup", type=int, default=None, help="default 10")
    p.add_argument("--hires", action=argparse.BooleanOptionalAction, default=None, help="default: on for CUDA")
    p.add_argument("--hires-sizes", default=None, help="default 2048,4096,8192")
    p.add_argument("--hires-iters", type=int, default=None, help="default 10")
    p.add_argument("--hires-warmup", type=int, default=None, help="default 2")
    p.add_argument("--max-sample-s", type=float, default=None,
                   help="cap on seconds per measurement: slow calls get fewer iterations (min 3); default 4")
    p.add_argument("--compile", action="store_true", help="add the torch.compile section (slow: minutes per model)")
    p.add_argument("--compile-mode", default="max-autotune-no-cudagraphs")
    p.add_argument("--train-compile", default="", metavar="MODE",
                   help="train section: torch.compile the network in this mode (e.g. default), as `yolo train compile=`")
    p.add_argument("--no-amp", action="store_true", help="train in fp32")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="training memory format; auto = on for CUDA, as Ultralytics' trainer")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=True,
                   help="Ultralytics' default deterministic=True (warn_only) during training")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting new measurements after this many seconds (default 540 on CUDA, none on CPU)")
    p.add_argument("--profile", metavar="MODEL", default=None,
                   help="only profile one training step of MODEL (at the first --train-sizes entry)")
    p.add_argument("--trace", action="store_true", help="with --profile: also write a Chrome trace")
    p.add_argument("--profile-infer", action="store_true", help="with --profile: an eval forward, not a training step")
    p.add_argument("--sdpa", choices=("default", "flash", "efficient", "cudnn"), default="default",
                   help="SDPA backend: default = torch's choice; else only that one (and the math fallback) enabled")
    p.add_argument("--out", default=os.environ.get("OUT") or "bench_out")
    a = p.parse_args(argv)
    q = a.quick
    defaults = {
        "train_sizes": "64:2,96:1" if q else "640:32,1280:8",
        "train_steps": 1 if q else 8,
        "rounds": 1 if q else 6,
        "train_warmup": 1 if q else 3,
        "latency_imgsz": 64 if q else 640,
        "latency_batches": "1,2" if q else "1,32",
        "latency_iters": 2 if q else 50,
        "latency_warmup": 1 if q else 10,
        "hires_sizes": "128,256" if q else "2048,4096,8192",
        "hires_iters": 2 if q else 10,
        "hires_warmup": 1 if q else 2,
        "max_sample_s": 1.0 if q else 4.0,
        "budget_s": 540.0 if a.device.startswith("cuda") else 0.0,
    }
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    bad = set(a.sections.split(",")) - set(ALL_SECTIONS)
    if bad:
        p.error(f"unknown section(s) {sorted(bad)}; choose from {ALL_SECTIONS}")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.deterministic:  # read when cuBLAS starts: set before any CUDA work, as `yolo train` effectively does
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    warnings.filterwarnings("ignore", message=".*deterministic.*")  # warn_only noise from deterministic mode
    if args.sdpa != "default":
        chosen = {"flash": "flash", "efficient": "mem_efficient", "cudnn": "cudnn"}[args.sdpa]
        for b in ("flash", "mem_efficient", "cudnn"):
            getattr(torch.backends.cuda, f"enable_{b}_sdp")(b == chosen)
    if args.profile:
        return profile_mode(args)
    bench = Bench(args)
    bench.models = args.models or (QUICK_MODELS if args.quick else DEFAULT_MODELS)
    return bench.main()


if __name__ == "__main__":
    sys.exit(main())
