"""Training timing: every model's AMP step resident, interleaved step by step; images/s, GPU time, peak memory."""

from __future__ import annotations

import torch

from _common import GiB, error_text, log, profiled_events
from bench_models import TrainStep, set_deterministic
from bench_report import fmt_value


class TrainTiming:
    """The `train` section of Bench (which supplies args, dev, results, run and interleaved)."""

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
