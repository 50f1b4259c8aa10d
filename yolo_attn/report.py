"""The report of `python -m yolo_attn` (or `yolo-attn`) on this installation, for bug reports and first steps.

It says which yolo-attn and Ultralytics are in use and whether that Ultralytics is in the tested range, whether
auto-loading is active (and how to turn it off), which fused attention kernels this machine can run, the layers a
model YAML may name with their arguments, and the shipped configs with their cost (each built at scale n: a few
seconds; `--no-costs` skips that).

Exit status: 0, or 1 when the layers could not be registered with Ultralytics.
"""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
import warnings
from pathlib import Path

import yolo_attn
import yolo_attn_autoload  # stdlib only; shipped beside the package
from yolo_attn_autoload import ENV_VAR

from .integration import registry
from .layers.switches import use_fused_attn
from .integration import CONFIG_DIR, TESTED_RELEASES, in_tested_range, tested_range

SITE_FILES = ("yolo_attn-autoload.pth", "yolo_attn-autoload.start")


def _home(path: str | os.PathLike | None) -> str:
    """Shorten a path under the home directory to ~/..., as a user would type it."""
    if not path:
        return "?"
    p, home = str(path), str(Path.home())
    return "~" + p[len(home) :] if home != "/" and p.startswith(home + os.sep) else p


# ------------------------------------------------------------------------------------------------ versions
def _versions(problems: list[str]) -> list[str]:
    import torch

    lines = [f"yolo-attn {yolo_attn.__version__} at {_home(Path(yolo_attn.__file__).parent)}"]
    try:
        import ultralytics
    except ImportError as e:
        problems.append(f"Ultralytics cannot be imported ({e}): pip install 'ultralytics{tested_range()}'")
        lines.append(f"Ultralytics: not importable ({e})")
    else:
        version = ultralytics.__version__
        ok = in_tested_range(version)
        verdict = "in the tested range" if ok else "NOT in the tested range"
        releases = f"{', '.join(TESTED_RELEASES[:-1])} and {TESTED_RELEASES[-1]}"
        lines.append(f"Ultralytics {version} at {_home(Path(ultralytics.__file__).parent)}: {verdict} ({tested_range()}); "
                     f"CI tests {releases}")
        if not ok:
            problems.append(
                f"Ultralytics {version} is untested (tested: {tested_range()}); layers may fail to build. "
                f"pip install 'ultralytics{tested_range()}'"
            )
    py = ".".join(map(str, sys.version_info[:3]))
    lines.append(f"torch {torch.__version__}, Python {py} ({_home(sys.executable)})")
    return lines


# ------------------------------------------------------------------------------------------------ auto-loading
def _site_dirs() -> list[Path]:
    dirs: list[str] = []
    try:
        dirs += site.getsitepackages()
    except AttributeError:  # some embedded/virtualenv-era site.py lack it
        pass
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    dirs += [p for p in sys.path if p and Path(p).name in ("site-packages", "dist-packages")]
    seen, out = set(), []
    for d in dirs:
        p = Path(d).resolve()
        if p not in seen and p.is_dir():
            seen.add(p)
            out.append(p)
    return out


_PROBE = """\
import json, sys
m = sys.modules.get("yolo_attn_autoload")
finder = m is not None and any(isinstance(f, m.AutoloadFinder) for f in sys.meta_path)
print(json.dumps({"ran": m is not None, "finder": finder, "hook": getattr(m, "__file__", None)}))
"""


def _fresh_interpreter_probe() -> dict | None:
    """What a new interpreter of this Python, in this environment, does at start-up (it imports no torch, so the
    probe stays cheap)."""
    try:
        p = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(p.stdout.strip().splitlines()[-1])
    except Exception:  # a report never fails on a probe
        return None


def _autoload(problems: list[str]) -> list[str]:
    env = os.environ.get(ENV_VAR)
    enabled = yolo_attn_autoload.enabled()
    found = [(d, [n for n in SITE_FILES if (d / n).is_file()]) for d in _site_dirs()]
    found = [(d, names) for d, names in found if names]
    probe = _fresh_interpreter_probe()

    if not found:
        state = "OFF: no start-up files in site-packages (a source checkout on sys.path?)"
    elif not enabled:
        state = f"OFF: {ENV_VAR}={env}"
    elif probe is None:
        state = "unknown: a fresh interpreter could not be probed"
    elif probe["finder"]:
        state = "ON (`yolo ...` and `from ultralytics import YOLO` find the layers without `import yolo_attn`)"
    else:
        state = "OFF: the start-up files are installed but did not run (interpreter started with -S?)"
    lines = [f"Auto-loading: {state}"]
    for d, names in found:
        lines.append(f"  start-up files   {_home(d)}: {', '.join(names)}")
    if found:
        read = ".start entry point (PEP 829)" if sys.version_info >= (3, 15) else ".pth import line"
        lines.append(f"  read at start-up: the {read}; both call yolo_attn_autoload:install")
    if probe is not None:
        hook = f" ({_home(probe['hook'])})" if probe["hook"] else ""
        lines.append(
            f"  fresh interpreter: hook {'ran' if probe['ran'] else 'did not run'}{hook}, "
            f"import finder on sys.meta_path: {'yes' if probe['finder'] else 'no'}"
        )
    lines.append(f"  {ENV_VAR} = {env!r}" if env is not None else f"  {ENV_VAR} unset (default: on)")
    if found and not enabled:
        lines.append(f"  turn on: unset {ENV_VAR} (or `import yolo_attn` before Ultralytics, which always registers)")
    else:
        lines.append(
            f"  turn off: {ENV_VAR}=0 in the environment (then `import yolo_attn` before Ultralytics registers by "
            "hand); `pip uninstall yolo-attn` removes the files"
        )
    if not found:
        problems.append("auto-loading is not installed: `import yolo_attn` before using Ultralytics, or pip install it")
    return lines


def _register_here(problems: list[str]) -> tuple[list[str], bool]:
    """Import Ultralytics in this process (which registers: `import yolo_attn` opted in); return (lines, success)."""
    caught: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            import ultralytics.nn.tasks as tasks
        caught = [str(x.message) for x in w if "yolo-attn" in str(x.message)]
        missing = [n for n in registry.layers() if n not in vars(tasks)]
        if missing:  # e.g. running from a source tree without the hook module: register by hand
            from .integration import register

            register()
            missing = [n for n in registry.layers() if n not in vars(tasks)]
    except Exception as e:  # report it, never crash the report
        problems.append(f"registration with Ultralytics failed: {type(e).__name__}: {e}")
        return [f"  this process: registration FAILED ({type(e).__name__}: {e})"], False
    if missing:
        problems.append(f"layers not registered with Ultralytics: {', '.join(missing)}; {' '.join(caught)}".strip())
        return [f"  this process: NOT registered ({', '.join(missing)} missing)"], False
    line = f"  this process: {len(registry.layers())} layer names registered in ultralytics.nn.tasks"
    return [f"{line} (`import yolo_attn` always registers)"], True


# ------------------------------------------------------------------------------------------------ kernels
_BACKENDS = (("FLASH_ATTENTION", "flash"), ("EFFICIENT_ATTENTION", "mem-efficient"), ("CUDNN_ATTENTION", "cudnn"),
             ("MATH", "math"))
_HEAD_DIM = 32  # the layers' default head_dim


def _default_choice(q, dropout_p: float = 0.0) -> str:
    """The backend PyTorch's dispatcher picks for these inputs (private API: '?' if it moved)."""
    import torch
    from torch.nn.attention import SDPBackend

    try:
        return SDPBackend(int(torch._fused_sdp_choice(q, q, q, None, dropout_p, False))).name
    except Exception:
        return "?"


def _forced(backend: str, dtype, device: str) -> tuple[bool, str]:
    """Run forward + backward with only `backend` allowed; return (ok, first reason PyTorch gave if not)."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(2, 2, 128, _HEAD_DIM, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            with sdpa_kernel([getattr(SDPBackend, backend)]):
                F.scaled_dot_product_attention(q, k, v).sum().backward()
            if device == "cuda":
                torch.cuda.synchronize()
            return True, ""
        except Exception as e:
            reasons = [str(x.message) for x in w] + [str(e)]
    return False, _reason(reasons)


def _reason(messages: list[str]) -> str:
    """The line of PyTorch's warnings that says why a forced backend cannot run, without the noise around it."""
    lines = []
    for m in messages:
        m = re.sub(r"\s*\(Triggered internally at [^)]*\)", "", " ".join(m.split()))
        if "runtime disabled" in m or m.endswith("not used because:") or not m:
            continue  # the other backends, switched off by the forcing itself, or a bare header
        lines.append(m.removeprefix("Warning: ").split(". ")[0].rstrip("."))  # first sentence
    return lines[0] if lines else "no reason given"


def _kernels() -> list[str]:
    import torch

    lines = ["Attention kernels (F.scaled_dot_product_attention; probed at head_dim 32, forward + backward):"]
    if not use_fused_attn():
        lines.append("  YOLO_ATTN_FUSED=0: layers built now use the unfused reference path (no fused kernel)")
    cap = torch.backends.cpu.get_cpu_capability()
    q = {dt: torch.randn(1, 2, 64, _HEAD_DIM, dtype=dt) for dt in (torch.float32, torch.bfloat16)}
    cpu = {str(dt).removeprefix("torch."): _default_choice(x) for dt, x in q.items()}
    drop = _default_choice(q[torch.float32], 0.1)
    names = {"FLASH_ATTENTION": "fused CPU flash kernel", "MATH": "math path (unfused)"}
    if len(set(cpu.values())) == 1:
        path = f"{names.get(next(iter(cpu.values())), next(iter(cpu.values())))} ({', '.join(cpu)})"
    else:
        path = ", ".join(f"{dt}: {names.get(c, c)}" for dt, c in cpu.items())
    lines.append(f"  CPU ({cap}, {torch.get_num_threads()} threads): {path}")
    if drop != next(iter(cpu.values())):
        lines.append(f"    with attention dropout > 0 while training: {names.get(drop, drop)}")

    if not torch.cuda.is_available():
        built = f"torch built with CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only torch build"
        lines.append(f"  CUDA: no GPU visible ({built})")
        return lines
    idx = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(idx)
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    lines.append(
        f"  CUDA {idx}: {torch.cuda.get_device_name(idx)} (sm_{major}{minor}), CUDA {torch.version.cuda}, "
        f"cuDNN {cudnn}; {torch.cuda.device_count()} GPU(s)"
    )
    off = [n for n, on in (("flash", torch.backends.cuda.flash_sdp_enabled()),
                           ("mem-efficient", torch.backends.cuda.mem_efficient_sdp_enabled()),
                           ("cudnn", torch.backends.cuda.cudnn_sdp_enabled()),
                           ("math", torch.backends.cuda.math_sdp_enabled())) if not on]
    if off:
        lines.append(f"    disabled in torch.backends.cuda: {', '.join(off)}")
    header = "    dtype     " + "".join(f"{label:<15}" for _, label in _BACKENDS) + "default choice"
    lines.append(header)
    reasons: dict[str, list[str]] = {}  # reason -> "backend/dtype" it holds for
    for dt in (torch.float16, torch.bfloat16, torch.float32):
        name = str(dt).removeprefix("torch.")
        if dt is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            lines.append(f"    {name:<10}not supported on this GPU")
            continue
        cells = []
        for backend, label in _BACKENDS:
            ok, why = _forced(backend, dt, "cuda")
            cells.append(f"{'yes' if ok else 'no':<15}")
            if not ok:
                reasons.setdefault(why, []).append(f"{label}/{name}")
        x = torch.randn(1, 2, 64, _HEAD_DIM, device="cuda", dtype=dt)
        lines.append(f"    {name:<10}{''.join(cells)}{_default_choice(x)}")
    lines.append("    (Ultralytics trains with fp16 autocast on CUDA, amp=True: the float16 row is what training uses)")
    for why, where in reasons.items():
        lines.append(f"    no {', '.join(where)}: {why}")
    return lines


# ------------------------------------------------------------------------------------------------ layers, configs
def _layers() -> list[str]:
    lines = ["Layers (YAML row [from, repeats, Name, [args]]; input channels come from the row read):"]
    table = registry.layers()
    width = max(map(len, table)) + 2
    for name, cls in table.items():
        args = ", ".join(f"{a}={d!r}" for a, d in registry.yaml_args(cls))
        lines.append(f"  {name:<{width}}[{args}]")
    return lines


def _comment_lines(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        out.append(line.lstrip("#").strip())
    return out


def _configs(costs: bool, problems: list[str]) -> list[str]:
    import yaml

    lines = [f"Configs shipped in {_home(CONFIG_DIR)} (by bare name from any directory; a file of the same name in the "
             "working directory, or one Ultralytics ships, comes first):"]
    models, data = [], []
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        (models if "backbone" in cfg else data).append((path, cfg))

    build = None
    if costs:
        try:
            from ultralytics.nn import tasks
            from ultralytics.utils.torch_utils import get_flops, get_num_params

            def build(cfg: str) -> tuple[str, str]:
                task = tasks.guess_model_task(tasks.yaml_model_load(cfg))
                model = {"segment": tasks.SegmentationModel, "pose": tasks.PoseModel, "obb": tasks.OBBModel,
                         "classify": tasks.ClassificationModel}.get(task, tasks.DetectionModel)(cfg, verbose=False)
                return f"{get_num_params(model):,}", f"{get_flops(model, 640):.1f}"
        except Exception as e:
            problems.append(f"cannot build configs: {type(e).__name__}: {e}")

    # Ultralytics names a scale by the letter after the version: yolov8-attn.yaml -> yolov8n-attn.yaml.
    rows = [(re.sub(r"(\d+)", r"\1n", p.name, count=1) if "scales" in c else p.name, p) for p, c in models]
    rows.sort(key=lambda r: (r[0].count("-"), r[0]))  # the default (fewest suffixes) first
    if build:
        rows.append(("yolov8n.yaml", None))
    table = [("model (scale n; s/m/l/x too)", "params", "GFLOPs@640", "")]
    for name, path in rows:
        what = "Ultralytics' own, for reference" if path is None else next(
            (re.sub(r"^(YOLOv8 \+ )?(yolo-attn: )?", "", c) for c in _comment_lines(path)[1:2]), "")
        cost = ("", "")
        if build:
            try:
                cost = build(str(path.with_name(name)) if path else name)
            except Exception as e:
                cost = ("failed", "")
                what = f"{type(e).__name__}: {e}"
                problems.append(f"{name} does not build: {type(e).__name__}: {e}")
        table.append((name, *cost, what))
    width = max(len(r[0]) for r in table) + 2
    for name, params, flops, what in table:
        if build:
            lines.append(f"  {name:<{width}}{params:>10}  {flops:>10}  {what}".rstrip())
        else:
            lines.append(f"  {name:<{width}}{what}".rstrip())

    if data:
        try:
            from ultralytics.utils import DATASETS_DIR
        except Exception:
            DATASETS_DIR = None
        lines.append("  data (generated by code on first use, offline, under Ultralytics' datasets_dir)")
        for path, cfg in data:
            n = len(cfg.get("names") or {})
            root = Path(str(cfg.get("path", path.stem)))
            if DATASETS_DIR is not None and not root.is_absolute():
                root = DATASETS_DIR / root
            state = "built" if (root / "attn_dataset.json").is_file() else "not built yet"
            lines.append(f"  {path.name:<{width}}{n} classes -> {_home(root)} ({state})")
    return lines


# ------------------------------------------------------------------------------------------------ main


def report(costs: bool = True) -> int:
    """Print the report, section by section; 0, or 1 when the layers could not be registered with Ultralytics."""
    problems: list[str] = []

    def section(lines: list[str]) -> None:
        print("\n".join(lines), flush=True)

    section(_versions(problems))
    print()
    registered, ok = _register_here(problems)
    section(_autoload(problems) + registered)
    print()
    try:
        section(_kernels())
    except Exception as e:  # a probe that breaks on some torch build must not hide the rest
        section([f"Attention kernels: probe failed ({type(e).__name__}: {e})"])
    print()
    section(_layers())
    print()
    section(_configs(costs, problems))
    print()
    section(["Problems: none"] if not problems else ["Problems:", *(f"  - {x}" for x in problems)])
    return 0 if ok else 1
