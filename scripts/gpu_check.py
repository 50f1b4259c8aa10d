"""Check that yolo-attn's layers really run on the fused SDPA kernels, and what that buys over a naive reference.

Three parts, each guarded (a failure is reported in the table and the rest goes on):

1. Forced backends: for each layer type, force each SDPA backend in turn with
   `torch.nn.attention.sdpa_kernel([SDPBackend.X])` and run forward + backward at the YOLOv8n neck shapes
   (fp16 autocast on CUDA). A forced backend that cannot run raises; the table shows "ok" or the error and the
   reasons PyTorch gave. The forward output is also compared with an fp32 MATH-backend reference (relative max
   error), so a kernel that runs but is wrong shows up too.
2. Default path: `torch.profiler` over one forward + backward per type, without forcing anything: lists the
   SDPA ops and attention kernels that ran, so it is plain whether the fused kernel is chosen.
3. Cost: forward + backward time (CUDA events, median) and peak memory of SelfAttentionBlock('standard') through
   SDPA vs a naive materialising reference (softmax(q k^T / sqrt d) v written out), at the YOLOv8n neck shapes
   for 640 px (batch 16) and 1280 px (batch 8). The shipped default block (its row read from yolov8-attn.yaml) is timed too.

Exit status 1 if, for some type, neither FLASH_ATTENTION nor EFFICIENT_ATTENTION works (CUDA), or the default
path of some type ran no fused kernel (CUDA); 0 otherwise.

Usage (GPU):  python scripts/gpu_check.py [--out DIR]
Usage (CPU smoke test):  python scripts/gpu_check.py --device cpu --quick --out /tmp/gpu_check
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
import re
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout without installing

try:  # register with Ultralytics first when it is there; the layers themselves do not need it
    import ultralytics.nn.tasks  # noqa: F401
except Exception:  # pragma: no cover - Ultralytics is optional for this script
    pass
import yolo_attn  # noqa: E402
import yolo_attn.layers.attention as _attention_mod  # noqa: E402
import yolo_attn.layers.attention2d as _attention2d_mod  # noqa: E402
from yolo_attn import SelfAttention, SelfAttentionBlock, TransformerEncoderLayer  # noqa: E402

from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

GiB = 1024**3
BACKENDS = ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")
# YOLOv8n neck outputs (channels, H, W) and batch, per input size.
SHAPES = {
    640: ((64, 80, 80), (128, 40, 40), (256, 20, 20)),
    1280: ((64, 160, 160), (128, 80, 80), (256, 40, 40)),
}
BATCH = {640: 16, 1280: 8}
QUICK_SHAPES = {64: ((64, 8, 8), (128, 4, 4), (256, 2, 2)), 128: ((64, 16, 16), (128, 8, 8), (256, 4, 4))}
QUICK_BATCH = {64: 2, 128: 1}
LEVEL = ("P3", "P4", "P5")
FUSED_KERNEL = re.compile(r"flash|fmha|efficient_attention|mem_eff|cutlass.*attention|cudnn.*(sdpa|attn|attention|mha)|sdpa", re.I)
FUSED_OP = re.compile(r"_scaled_dot_product_(flash|efficient|cudnn)_attention|_flash_attention|_efficient_attention", re.I)
MATH_OP = re.compile(r"_scaled_dot_product_attention_math", re.I)


def log(*a):
    print(*a, flush=True)


def short(s: str, n: int = 160) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def is_oom(e: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(e, oom_type) or "out of memory" in str(e).lower() or "CUBLAS_STATUS_ALLOC_FAILED" in str(e)


def first_sentence(s: str) -> str:
    s = " ".join(str(s).split())
    s = re.sub(r"\s*\(Triggered internally at [^)]*\)\.?", "", s)
    m = re.match(r"(.+?[.!?])(\s|$)", s)
    return m.group(1) if m else s


def error_text(e: BaseException, reasons: list[str] | None = None) -> str:
    """'OOM', or 'error: Type: first sentence | why PyTorch refused (its warnings)'."""
    if is_oom(e):
        return "OOM"
    msg = f"error: {type(e).__name__}: {first_sentence(e)}"
    if reasons:
        msg += " | " + " ".join(dict.fromkeys(r for r in reasons if r))
    return msg


def sdp_reasons(caught) -> list[str]:
    """The warnings PyTorch emits when it refuses an SDPA kernel, without their source locations."""
    out = []
    for w in caught:
        text = re.sub(r"\s*\(Triggered internally at [^)]*\)\.?", "", " ".join(str(w.message).split()))
        if "deterministic" in text or not text:
            continue
        out.append(text)
    return out[:6]


def cleanup(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------------- layer types
def unzero(module: nn.Module) -> nn.Module:
    """Give zero-initialised output projections random weights, so the attention path affects the output."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.Linear) and not m.weight.detach().any():
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.05)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
    return module


def default_row_args() -> list:
    """The YAML arguments (after c1) of the first SelfAttentionBlock row in the shipped default config."""
    import yaml  # PyYAML comes with Ultralytics

    cfg = yaml.safe_load((Path(yolo_attn.__file__).parent / "configs" / "yolov8-attn.yaml").read_text())
    return next(args for _, _, module, args in cfg["head"] if module == "SelfAttentionBlock")


def make_layer(kind: str, c: int) -> tuple[nn.Module, bool]:
    """Return (layer, takes_tokens) for a layer type at c channels."""
    if kind in ("standard", "spatial", "efficient"):
        return SelfAttentionBlock(c, kind), False
    if kind == "default":  # the row the shipped yolov8-attn.yaml uses
        return SelfAttentionBlock(c, *default_row_args()), False
    if kind == "SelfAttention":
        return SelfAttention(c, num_heads=max(1, c // 32)), True
    if kind == "TransformerEncoderLayer":  # class defaults otherwise (dropout 0.1): fed a (B, C, H, W) map
        return TransformerEncoderLayer(c, nhead=max(1, c // 32), dim_feedforward=4 * c), False
    raise ValueError(kind)


TYPES = ("standard", "spatial", "efficient", "default", "SelfAttention", "TransformerEncoderLayer")


def make_input(shape, batch, tokens, device, dtype, requires_grad=True, seed=0):
    c, h, w = shape
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((batch, h * w, c) if tokens else (batch, c, h, w), generator=g).to(device, dtype)
    return x.requires_grad_(requires_grad)


def naive_attend(q, k, v, dropout_p: float = 0.0, fused: bool = True):
    """softmax(q k^T / sqrt(d)) v with the (B, heads, Nq, Nk) matrix built explicitly (the reference)."""
    attn = torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1)
    if dropout_p:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


@contextlib.contextmanager
def naive_attention():
    """Route every yolo_attn layer through `naive_attend` instead of SDPA, for the duration of the block."""
    saved = _attention_mod.attend, _attention2d_mod.attend
    _attention_mod.attend = _attention2d_mod.attend = naive_attend
    try:
        yield
    finally:
        _attention_mod.attend, _attention2d_mod.attend = saved


def amp_ctx(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def fwd_bwd(m: nn.Module, x: torch.Tensor, device, amp: bool, grad: torch.Tensor | None = None):
    m.zero_grad(set_to_none=True)
    x.grad = None
    with amp_ctx(device, amp):
        out = m(x)
    if grad is None:
        grad = torch.randn_like(out)
    out.backward(grad)
    return out, grad


# ------------------------------------------------------------------------------------------ 1. forced backends
def check_backend(kind, backend_name, shapes, batch, device, amp) -> dict:
    """Force one backend; forward+backward (train) at each shape, then an eval forward compared to fp32 MATH."""
    backend = getattr(SDPBackend, backend_name)
    worst = 0.0
    for shape in shapes:
        reasons: list[str] = []
        try:
            torch.manual_seed(0)
            m, tokens = make_layer(kind, shape[0])
            m = unzero(m).to(device)
            dtype = torch.float16 if (device.type == "cuda" and amp) else torch.float32
            x = make_input(shape, batch, tokens, device, dtype)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    m.train()
                    with sdpa_kernel([backend]):
                        fwd_bwd(m, x, device, amp)
                        sync(device)
                        m.eval()
                        with torch.no_grad(), amp_ctx(device, amp):
                            out = m(x.detach()).float()
                    # Reference: same weights, fp32, MATH backend.
                    ref_m = copy.deepcopy(m).float().eval()
                    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
                        ref = ref_m(x.detach().float())
                    err = ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-6)).item()
                    if not math.isfinite(err):
                        raise RuntimeError(f"non-finite output (rel err {err})")
                    worst = max(worst, err)
                finally:
                    reasons = sdp_reasons(caught)
        except Exception as e:  # noqa: BLE001 - reported in the table
            return {"status": "OOM" if is_oom(e) else "error", "error": error_text(e, reasons),
                    "shape": f"b{batch} {shape[0]}x{shape[1]}x{shape[2]}"}
        finally:
            m = x = None  # noqa: F841
            cleanup(device)
    return {"status": "ok", "rel_err": worst}


# ------------------------------------------------------------------------------------------ 2. default path profile
def profile_default(kind, shape, batch, device, amp) -> dict:
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    m, tokens = make_layer(kind, shape[0])
    m = unzero(m).to(device).train()
    dtype = torch.float16 if (device.type == "cuda" and amp) else torch.float32
    x = make_input(shape, batch, tokens, device, dtype)
    fwd_bwd(m, x, device, amp)  # warm-up
    sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        fwd_bwd(m, x, device, amp)
        sync(device)
    ops, kernels = set(), set()
    for e in prof.events():
        name = e.name
        if "scaled_dot_product" in name or FUSED_OP.search(name) or MATH_OP.search(name):
            ops.add(name)
        if str(getattr(e, "device_type", "")).endswith("CUDA") and FUSED_KERNEL.search(name):
            kernels.add(name)
        for k in getattr(e, "kernels", []) or []:
            if FUSED_KERNEL.search(k.name):
                kernels.add(k.name)
    fused_ops = sorted(o for o in ops if FUSED_OP.search(o))
    math_ops = sorted(o for o in ops if MATH_OP.search(o))
    if device.type == "cuda":
        fused = bool(fused_ops or kernels) and not math_ops
    else:
        fused = bool(fused_ops) and not math_ops
    return {
        "fused": fused,
        "sdpa_ops": sorted(ops),
        "attention_kernels": sorted(kernels),
        "verdict": "fused" if fused else ("MATH FALLBACK" if math_ops else "no fused kernel seen"),
    }


# ------------------------------------------------------------------------------------------ 3. cost
def time_fwd_bwd(make, shape, batch, device, amp, iters, warmup, naive=False) -> dict:
    """Median forward+backward time (ms) and peak memory (GiB) of one layer."""
    torch.manual_seed(0)
    m, tokens = make(shape[0])
    m = m.to(device).train()
    dtype = torch.float16 if (device.type == "cuda" and amp) else torch.float32
    x = make_input(shape, batch, tokens, device, dtype)
    ctx = naive_attention() if naive else contextlib.nullcontext()
    times = []
    with ctx:
        _, grad = fwd_bwd(m, x, device, amp)
        for _ in range(max(0, warmup - 1)):
            fwd_bwd(m, x, device, amp, grad)
        sync(device)
        # Peak memory of one step, counted from a clean start (inputs, weights and grad buffer included).
        m.zero_grad(set_to_none=True)
        x.grad = None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        fwd_bwd(m, x, device, amp, grad)
        sync(device)
        peak = torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else float("nan")
        for _ in range(iters):
            if device.type == "cuda":
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize(device)
                s.record()
                fwd_bwd(m, x, device, amp, grad)
                e.record()
                e.synchronize()
                times.append(s.elapsed_time(e))
            else:
                t0 = time.perf_counter()
                fwd_bwd(m, x, device, amp, grad)
                times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": statistics.median(times), "peak_gib": peak}


def guarded(fn, *a, **k) -> dict:
    try:
        return fn(*a, **k)
    except Exception as e:  # noqa: BLE001
        msg = error_text(e)
        if not is_oom(e):
            traceback.print_exc(limit=3)
        return {"error": msg}


# ------------------------------------------------------------------------------------------ report
def env_header(device) -> dict:
    import importlib.metadata as md

    def ver(p):
        try:
            return md.version(p)
        except Exception:  # noqa: BLE001
            return "n/a"

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "ultralytics": ver("ultralytics"),
        "yolo_attn": getattr(yolo_attn, "__version__", "n/a"),
        "python": platform.python_version(),
    }


def fmt_cell(r: dict) -> str:
    if r.get("status") == "ok":
        return f"ok (err {r['rel_err']:.1e})"
    where = f" [at {r['shape']}]" if r.get("shape") else ""
    return short(r.get("error", "?"), 200) + where


def fmt_cost(r: dict | None) -> str:
    if not r:
        return "-"
    if "error" in r:
        return short(r["error"], 60)
    mem = "" if math.isnan(r["peak_gib"]) else f" / {r['peak_gib']:.2f} GiB"
    return f"{r['ms']:.2f} ms{mem}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--quick", action="store_true", help="tiny shapes and few iterations (CPU smoke test)")
    p.add_argument("--types", default=",".join(TYPES), help=f"comma list of {TYPES}")
    p.add_argument("--parts", default="backends,profile,cost", help="comma list of backends,profile,cost")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default 20, quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up iterations (default 5, quick 1)")
    p.add_argument("--no-amp", action="store_true", help="fp32 instead of fp16 autocast on CUDA")
    p.add_argument("--out", default=os.environ.get("OUT") or "bench_out")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    amp = device.type == "cuda" and not args.no_amp
    shapes = QUICK_SHAPES if args.quick else SHAPES
    batches = QUICK_BATCH if args.quick else BATCH
    check_size = min(shapes)  # the 640 px shapes (or the smallest quick ones)
    iters = args.iters or (2 if args.quick else 20)
    warmup = args.warmup or (1 if args.quick else 5)
    types = [t for t in args.types.split(",") if t]
    parts = set(args.parts.split(","))
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    env = env_header(device)
    log("# yolo-attn gpu_check  " + "  ".join(f"{k}={v}" for k, v in env.items()))
    log(f"# precision: {'fp16 autocast' if amp else 'fp32'}; check shapes {check_size}px batch {batches[check_size]}: "
        + ", ".join(f"{LEVEL[i]} {c}x{h}x{w}" for i, (c, h, w) in enumerate(shapes[check_size])))
    if device.type == "cuda":
        log(f"# SDP enabled: flash={torch.backends.cuda.flash_sdp_enabled()} "
            f"mem_efficient={torch.backends.cuda.mem_efficient_sdp_enabled()} "
            f"cudnn={torch.backends.cuda.cudnn_sdp_enabled()} math={torch.backends.cuda.math_sdp_enabled()}")
    results = {"env": env, "args": vars(args), "backends": {}, "profile": {}, "cost": {}, "section_s": {}}
    failures: list[str] = []

    def save(md: str = ""):
        (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str))
        if md:
            (out_dir / "gpu_check.md").write_text(md)

    # 1. forced backends
    if "backends" in parts:
        t0 = time.perf_counter()
        for kind in types:
            row = results["backends"][kind] = {}
            for b in BACKENDS:
                row[b] = check_backend(kind, b, shapes[check_size], batches[check_size], device, amp)
                log(f"[backends] {kind:24s} {b:20s} {fmt_cell(row[b])}")
            save()
            ok = [b for b in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION") if row[b]["status"] == "ok"]
            if device.type == "cuda" and not ok:
                failures.append(f"{kind}: neither FLASH_ATTENTION nor EFFICIENT_ATTENTION runs")
        results["section_s"]["backends"] = time.perf_counter() - t0

    # 2. default path profile (P3 shape: the largest map, the one that matters)
    if "profile" in parts:
        t0 = time.perf_counter()
        for kind in types:
            r = results["profile"][kind] = guarded(
                profile_default, kind, shapes[check_size][0], batches[check_size], device, amp
            )
            cleanup(device)
            log(f"[profile] {kind:24s} {r.get('verdict', r.get('error'))}: ops={r.get('sdpa_ops')} "
                f"kernels={[short(k, 80) for k in r.get('attention_kernels', [])]}")
            if device.type == "cuda" and not r.get("fused"):
                failures.append(f"{kind}: default path ran no fused attention kernel ({r.get('verdict', r.get('error'))})")
            save()
        results["section_s"]["profile"] = time.perf_counter() - t0

    # 3. cost: SDPA vs naive
    if "cost" in parts:
        t0 = time.perf_counter()
        variants = {
            "standard (SDPA)": (lambda c: make_layer("standard", c), False),
            "standard (naive ref)": (lambda c: make_layer("standard", c), True),
            f"default row {default_row_args()} (SDPA)": (lambda c: make_layer("default", c), False),
        }
        for size in sorted(shapes):
            for i, shape in enumerate(shapes[size]):
                key = f"{LEVEL[i]}@{size} b{batches[size]} {shape[0]}ch {shape[1]}x{shape[2]}"
                row = results["cost"][key] = {}
                for name, (make, naive) in variants.items():
                    row[name] = guarded(time_fwd_bwd, make, shape, batches[size], device, amp, iters, warmup, naive)
                    cleanup(device)
                    log(f"[cost] {key:32s} {name:30s} {fmt_cost(row[name])}")
                save()
        results["section_s"]["cost"] = time.perf_counter() - t0

    # Report
    lines = [f"## yolo-attn gpu_check ({env['device']}, torch {env['torch']}, CUDA {env['cuda']}, "
             f"ultralytics {env['ultralytics']}, yolo_attn {env['yolo_attn']}, {env['date']})", ""]
    if results["backends"]:
        lines += [f"### Forced SDPA backends, fwd+bwd, {'fp16 autocast' if amp else 'fp32'}, {check_size}px neck shapes "
                  f"b{batches[check_size]} (err = rel. max err of eval fwd vs fp32 MATH)", "",
                  "| type | FLASH | EFFICIENT | CUDNN |", "|---|---|---|---|"]
        for kind, row in results["backends"].items():
            lines.append(f"| {kind} | " + " | ".join(fmt_cell(row[b]) for b in BACKENDS) + " |")
        lines.append("")
    if results["profile"]:
        lines += ["### Default (unforced) path, profiler, P3 shape", "", "| type | verdict | SDPA ops | attention kernels |",
                  "|---|---|---|---|"]
        for kind, r in results["profile"].items():
            if "error" in r:
                lines.append(f"| {kind} | {short(r['error'], 100)} | | |")
                continue
            ops = ", ".join(o.replace("aten::", "") for o in r["sdpa_ops"]) or "-"
            ks = ", ".join(short(k, 70) for k in r["attention_kernels"][:4]) or "-"
            lines.append(f"| {kind} | {r['verdict']} | {ops} | {ks} |")
        lines.append("")
    if results["cost"]:
        names = list(next(iter(results["cost"].values())).keys())
        lines += ["### Forward+backward, median ms / peak GiB (max_memory_allocated)", "",
                  "| shape | " + " | ".join(names) + " | naive/SDPA time |", "|---" * (len(names) + 2) + "|"]
        for key, row in results["cost"].items():
            a, b = row.get(names[0], {}), row.get(names[1], {})
            ratio = f"{b['ms'] / a['ms']:.1f}x" if "ms" in a and "ms" in b else "-"
            lines.append(f"| {key} | " + " | ".join(fmt_cost(row.get(n)) for n in names) + f" | {ratio} |")
        lines += ["", "H100 reference (naive standard, P3@640 b16): 30.4 ms / 17.3 GiB; through SDPA: 4.0 ms / 0.19 GiB.", ""]
    secs = ", ".join(f"{k} {v:.0f}s" for k, v in results["section_s"].items())
    lines.append(f"Section times: {secs}; total {time.perf_counter() - t_start:.0f}s. Files: {out_dir}/gpu_check.json, .md")
    if device.type != "cuda":
        lines.append("(CPU run: EFFICIENT/CUDNN are CUDA-only, exit status ignores backend checks.)")
    if failures:
        lines += ["", "**FAIL:** " + "; ".join(failures)]
    else:
        lines += ["", "**PASS**" if device.type == "cuda" else "**done (CPU smoke test)**"]
    md = "\n".join(lines)
    results["failures"] = failures
    save(md)
    log("\n" + md)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
