"""The installed-package experience: a regular `pip install` works from any directory.

Builds the wheel (helpers and fixtures shared with test_packaging.py), installs it into a fresh
venv (torch/ultralytics come from the interpreter running the tests, see `Venv`; the venv's own copy of
yolo_attn is the one imported, which the tests check) and runs everything from a temporary directory outside the
repository, with Ultralytics' settings, datasets and runs in that temporary tree (``YOLO_CONFIG_DIR``).

Slow (30-45 s on 2 cores, half of it one real epoch of training), but it is the only end-to-end check of the
wheel: configs, the embedded dataset builder, the start-up hook, and the ``yolo-attn`` report.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

# Module-scoped fixtures and helpers of the packaging tests (pytest puts tests/ on sys.path).
from test_packaging import HOOK, PTH, REPO, START, Venv, _clean_env, _run, source, wheel  # noqa: F401

pytestmark = pytest.mark.slow

CONFIGS = sorted(p.name for p in (REPO / "yolo_attn" / "configs").glob("*.yaml"))


@dataclass
class Installed:
    venv: Venv
    yolo: Path  # a `yolo` console script of the venv's interpreter, as pip writes one
    cwd: Path  # an empty working directory outside the repository
    datasets: Path
    runs: Path
    env: dict[str, str]

    def run(self, *cmd: str | Path, **env: str) -> str:
        """Run in `cwd` with the venv's environment; return stdout + stderr (asserts exit status 0)."""
        proc = _run([str(c) for c in cmd], cwd=self.cwd, env={**self.env, **env})
        return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:  # noqa: F811
    from ultralytics.utils import SETTINGS

    root = tmp_path_factory.mktemp("installed")
    venv = Venv(root / "venv")
    venv.pip_install("--no-index", str(wheel), cwd=root)  # a regular, non-editable install
    yolo = venv.root / "bin" / "yolo"  # ultralytics' own script lives in the base env, bound to its python
    yolo.write_text(f"#!{venv.python}\nimport sys\nfrom ultralytics.cfg import entrypoint\nsys.exit(entrypoint())\n")
    yolo.chmod(0o755)

    cwd, datasets, runs, config = (root / d for d in ("work", "datasets", "runs", "config"))
    for d in (cwd, config / "Ultralytics"):
        d.mkdir(parents=True)
    # A complete settings file (no "settings updated" migration), with every directory in the temporary tree.
    dirs = dict(datasets_dir=str(datasets), runs_dir=str(runs), weights_dir=str(root / "weights"), sync=False)
    (config / "Ultralytics" / "settings.json").write_text(json.dumps({**SETTINGS.defaults, **dirs}, indent=2))
    env = _clean_env(YOLO_CONFIG_DIR=str(config), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false")
    assert REPO not in cwd.parents and not any(cwd.iterdir())
    return Installed(venv, yolo, cwd, datasets, runs, env)


def test_wheel_install_ships_configs_builder_hook_and_script(installed: Installed) -> None:
    site = installed.venv.site
    assert sorted(p.name for p in (site / "yolo_attn" / "configs").glob("*.yaml")) == CONFIGS
    assert not (site / "yolo_attn" / "configs").is_symlink()
    assert (site / "yolo_attn" / "datasets" / "__init__.py").is_file()
    assert (site / "yolo_attn" / "__main__.py").is_file()
    assert (installed.venv.root / "bin" / "yolo-attn").is_file(), "[project.scripts] yolo-attn not installed"
    for name in (PTH, START, HOOK):
        assert (site / name).read_bytes() == (REPO / name).read_bytes(), f"{name} differs from the repository's"
    # The .pth's executable line and the .start entry point call one and the same function (test_packaging
    # checks the .start side alone), so whichever a given Python reads, install() is what runs.
    (pth_line,) = [ln for ln in (site / PTH).read_text().splitlines() if ln.startswith("import ")]
    m = re.fullmatch(r"import (\w+); (\1\.\w+)\(\)", pth_line.strip())
    assert m, pth_line
    (entry,) = [ln.strip() for ln in (site / START).read_text().splitlines() if ln.strip() and ln[0] != "#"]
    assert re.fullmatch(r"[\w.]+:[\w.]+", entry), entry
    out = installed.venv.py(
        f"import pkgutil; a = pkgutil.resolve_name({m.group(2)!r}); b = pkgutil.resolve_name({entry!r}); "
        "print(a is b, callable(b), b.__module__, b.__code__.co_filename)",
        cwd=installed.cwd,
    )
    assert out.split() == ["True", "True", "yolo_attn_autoload", str(site / HOOK)]


def test_cli_trains_shipped_config_and_data_by_name(installed: Installed) -> None:
    """The issue's command, run from an empty directory: both YAMLs come from the package, the data is generated."""
    log = installed.run(
        installed.yolo, "train", "model=yolov8n-attn.yaml", "data=attn-shapes.yaml", "epochs=1", "imgsz=64",
        "batch=8", "device=cpu", "workers=0", "plots=False",
        "fraction=0.25",  # a real epoch on 150 of the 600 generated images: keeps the test near a minute on 2 cores
        # Under pytest (or GitHub Actions) Ultralytics puts relative projects under its own package: be explicit.
        f"project={installed.runs / 'detect'}", "name=run",
    )
    assert not any(installed.cwd.glob("*.yaml")), "nothing to resolve locally: the shipped files were used"
    assert "yolo_attn.SelfAttentionBlock" in log, "model table shows no attention rows: not the plugin's config"
    marker = json.loads((installed.datasets / "attn-shapes" / "attn_dataset.json").read_text())
    assert marker["kind"] == "shapes" and (marker["n_train"], marker["n_val"]) == (600, 120)  # builder defaults
    run = installed.runs / "detect" / "run"
    args = (run / "args.yaml").read_text()
    assert "model: yolov8n-attn.yaml" in args and "data: attn-shapes.yaml" in args
    assert (run / "weights" / "best.pt").is_file(), log[-3000:]


_RESOLVE = """
import json, os, sys
from pathlib import Path
from ultralytics.utils import ROOT
from ultralytics.utils.checks import check_yaml
import ultralytics.nn.tasks as tasks  # auto-loading registers here
import yolo_attn
from yolo_attn import integration

empty, local, decoys = map(Path, sys.argv[1:4])
names = lambda cfg: sorted({row[2] for row in cfg["backbone"] + cfg["head"]})
out = {"pkg": yolo_attn.__file__, "ultralytics_cfgs": sorted(p.name for p in (ROOT / "cfg").rglob("*.y*ml"))}
os.chdir(empty)
out.update(attn=check_yaml("yolov8-attn.yaml"), data=check_yaml("attn-shapes.yaml"), v8=check_yaml("yolov8.yaml"),
           attn_rows=names(tasks.yaml_model_load("yolov8n-attn.yaml")),
           v8_rows=names(tasks.yaml_model_load("yolov8n.yaml")))
os.chdir(local)
out.update(local_attn=check_yaml("yolov8-attn.yaml"), local_nc=tasks.yaml_model_load("yolov8n-attn.yaml")["nc"],
           local_data=check_yaml("attn-shapes.yaml"))
os.chdir(empty)
integration.CONFIG_DIR = decoys  # as if the plugin shipped files named like Ultralytics' own
out.update(decoy_v8=check_yaml("yolov8.yaml"), decoy_coco8=check_yaml("coco8.yaml"))
print(json.dumps(out))
"""


def test_names_resolve_to_shipped_files_without_shadowing_ultralytics_or_local_files(installed: Installed) -> None:
    pkg = installed.venv.site / "yolo_attn"
    empty, local, decoys = (installed.cwd.parent / d for d in ("empty", "local", "decoys"))
    for d in (empty, local, decoys):
        d.mkdir()
    shipped = (REPO / "yolo_attn" / "configs" / "yolov8-attn.yaml").read_text()
    (local / "yolov8-attn.yaml").write_text(re.sub(r"(?m)^nc: \d+", "nc: 3", shipped))
    (local / "attn-shapes.yaml").write_text("path: mine\ntrain: images\nval: images\nnames: {0: thing}\n")
    for name in ("yolov8.yaml", "coco8.yaml"):
        (decoys / name).write_text("# decoy\n")
    code = installed.venv.root / "resolve.py"
    code.write_text(_RESOLVE)
    out = json.loads(installed.run(installed.venv.python, code, empty, local, decoys).strip().splitlines()[-1])

    assert Path(out["pkg"]).parent == pkg, "the venv's yolo_attn must be the one imported"
    # Bare names find the package's files from any directory ...
    assert out["attn"] == str(pkg / "configs" / "yolov8-attn.yaml")
    assert out["data"] == str(pkg / "configs" / "attn-shapes.yaml")
    assert "SelfAttentionBlock" in out["attn_rows"]
    # ... never Ultralytics' own names: no shipped name collides, and even one that did would lose.
    assert not set(CONFIGS) & set(out["ultralytics_cfgs"])
    assert "ultralytics" in Path(out["v8"]).parts and "SelfAttentionBlock" not in out["v8_rows"]
    assert out["decoy_v8"] == out["v8"] and "ultralytics" in Path(out["decoy_coco8"]).parts
    # ... and a user's file of the same name in the working directory wins over the shipped one.
    assert out["local_attn"] == "yolov8-attn.yaml" and out["local_nc"] == 3
    assert out["local_data"] == "attn-shapes.yaml"


def test_report(installed: Installed) -> None:
    import ultralytics

    import yolo_attn
    from yolo_attn import registry
    from yolo_attn.integration import TESTED_RELEASES, TESTED_ULTRALYTICS

    site = installed.venv.site
    low, high = (".".join(map(str, v)) for v in TESTED_ULTRALYTICS)
    text = installed.run(installed.venv.python, "-m", "yolo_attn")
    lines = text.splitlines()
    assert lines[0] == f"yolo-attn {yolo_attn.__version__} at {site / 'yolo_attn'}", text
    assert f"Ultralytics {ultralytics.__version__} at" in text and f"in the tested range (>={low},<{high})" in text
    assert f"; CI tests {', '.join(TESTED_RELEASES[:-1])} and {TESTED_RELEASES[-1]}" in text
    assert "Auto-loading: ON" in text and f"start-up files   {site}: {PTH}, {START}" in text
    assert f"hook ran ({site / HOOK}), import finder on sys.meta_path: yes" in text
    assert "turn off: YOLO_ATTN_AUTOLOAD=0" in text
    assert f"this process: {len(registry.layers())} layer names registered" in text
    assert "Attention kernels" in text and re.search(r"(?m)^  CPU \(.+\): (fused CPU flash kernel|math path)", text)
    for name, cls in registry.layers().items():
        args = ", ".join(f"{a}={d!r}" for a, d in registry.yaml_args(cls))
        assert re.search(rf"(?m)^  {name} +\[{re.escape(args)}\]$", text), name
    costs = {m[1]: (int(m[2].replace(",", "")), float(m[3]))
             for m in re.finditer(r"(?m)^  (\S+\.yaml) +([\d,]+) +([\d.]+)  ", text)}
    models = [re.sub(r"(\d+)", r"\1n", c, count=1) for c in CONFIGS if c.startswith("yolo")]
    assert set(costs) == {*models, "yolov8n.yaml"}, text
    base = costs.pop("yolov8n.yaml")
    v8 = {m: c for m, c in costs.items() if m.startswith("yolov8n-attn")}  # detection, the reference's family and task
    assert v8 and all(p > base[0] and f > base[1] for p, f in v8.values()), costs  # attention adds params and FLOPs
    shapes = re.escape(str(installed.datasets / "attn-shapes"))
    assert re.search(rf"(?m)^  attn-shapes.yaml +6 classes -> {shapes} \(built\)$", text), text
    assert lines[-1] == "Problems: none", text

    off = installed.run(installed.venv.root / "bin" / "yolo-attn", "--no-costs", YOLO_ATTN_AUTOLOAD="0")
    assert "Auto-loading: OFF: YOLO_ATTN_AUTOLOAD=0" in off and "import finder on sys.meta_path: no" in off
    assert "turn on: unset YOLO_ATTN_AUTOLOAD" in off and "GFLOPs" not in off
    assert "layer names registered" in off  # `import yolo_attn` (the report's own) is an explicit opt-in


def test_untested_ultralytics_version_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import yolo_attn  # noqa: F401  registers when Ultralytics loads
    import ultralytics
    import ultralytics.nn.tasks  # noqa: F401
    from ultralytics.utils import LOGGER

    from yolo_attn import integration

    low, high = integration.TESTED_ULTRALYTICS
    tested = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    LOGGER.addHandler(handler)
    try:
        monkeypatch.setattr(integration, "_registered", False)
        monkeypatch.setattr(ultralytics, "__version__", ".".join(map(str, high)))  # the excluded upper bound
        integration.register()
        integration.register()  # once per process
        (message,) = [r.getMessage() for r in records]
        assert "yolo-attn" in message and tested in message and f"found {ultralytics.__version__}" in message
        records.clear()
        for version, warns in ((".".join(map(str, low)), False), (f"{low[0]}.{low[1] - 1}.0", True)):
            monkeypatch.setattr(ultralytics, "__version__", version)
            integration._check_version()
            assert bool(records) == warns, (version, [r.getMessage() for r in records])
            records.clear()
    finally:
        LOGGER.removeHandler(handler)
