"""Inference timing: fused eval latency interleaved across models, CUDA-graph replay, torch.compile, high resolution."""

from __future__ import annotations

import time

import torch

from _common import GiB, log
from bench_models import first_tensor, inference_model, rand_image
from bench_report import fmt_value


class InferTiming:
    """The `latency`, `cudagraph`, `compile` and `hires` sections of Bench (which supplies args, dev, results, run and
    interleaved)."""

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
