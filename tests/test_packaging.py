"""Packaging of the auto-loader: wheel contents, and start-up behaviour once installed.

Builds the project (a copy of the working tree, so no ``build/`` or
``*.egg-info`` lands in the checkout) into a wheel and an editable wheel,
installs each into its own venv (torch/ultralytics come from the interpreter
running the tests, see `Venv`), and runs fresh interpreters from a cwd
outside the repository, as DDP workers or the ``yolo`` CLI would be.

Slow-ish (about 15 s: one build, two venvs, a few torch imports) but part of
the default run on purpose: it is the only check that the hook really ships.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PTH = "yolo_attn-autoload.pth"
START = "yolo_attn-autoload.start"
HOOK = "yolo_attn_autoload.py"

pytestmark = pytest.mark.slow

_IGNORE_ANYWHERE = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".venv",
    ".venv-ultralytics-*",  # .ci/ultralytics-range
    "runs",
    "*.pt",
    "*.onnx",
    "*.torchscript",
    "*_openvino_model",
)


def _COPY_IGNORE(path: str, names: list[str]) -> set[str]:
    """Build outputs anywhere, and the generated ./datasets at the root only (yolo_attn/datasets is the package)."""
    ignored = set(_IGNORE_ANYWHERE(path, names))
    return ignored | ({"datasets"} & set(names) if Path(path) == REPO else set())


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def _clean_env(**extra: str) -> dict[str, str]:
    """Environment of a user's shell: no repo on the path, no opt-out, no user site."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "YOLO_ATTN_AUTOLOAD"}}
    env["PYTHONNOUSERSITE"] = "1"
    env.update(extra)
    return env


class Venv:
    """A venv to install yolo-attn into, by default seeing the running interpreter's packages (torch, ultralytics).

    Not `--system-site-packages`: that exposes the *base* interpreter's site-packages, which on a fresh machine hold
    nothing when the tests run inside a virtual environment (as CI and the README do). Instead a `.pth` file lists
    the running interpreter's site directories; Python appends those after the venv's own site-packages, so what is
    installed into the venv (yolo-attn's wheel) is what it imports, and the parent's `.pth` files are not executed.
    """

    def __init__(self, root: Path, inherit: bool = True) -> None:
        self.root = root
        self.python = root / "bin" / "python"
        _run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root.parent)
        self.site = Path(self.py("import sysconfig; print(sysconfig.get_path('purelib'))").strip())
        if inherit:
            parents = dict.fromkeys(sysconfig.get_path(k) for k in ("purelib", "platlib"))
            (self.site / "_test_parent_site.pth").write_text("".join(f"{d}\n" for d in parents))

    def pip_install(self, *args: str, cwd: Path) -> None:
        # The base interpreter's pip drives the venv: faster than bootstrapping pip into it.
        _run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "--no-deps", *args], cwd=cwd)

    def py(self, code: str, cwd: Path | None = None, **env: str) -> str:
        cwd = cwd or self.root
        return _run([str(self.python), "-c", textwrap.dedent(code)], cwd=cwd, env=_clean_env(**env)).stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "yolo-attn"
    shutil.copytree(REPO, src, symlinks=True, ignore=_COPY_IGNORE)
    return src


@pytest.fixture(scope="module")
def wheel(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(out)], cwd=source)
    (whl,) = out.glob("yolo_attn-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    env = Venv(tmp_path_factory.mktemp("venv") / "wheel")
    env.pip_install("--no-index", str(wheel), cwd=env.root)
    return env


@pytest.fixture(scope="module")
def editable_venv(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    # What `pip install -e .` does, split in two: the PEP 660 hook runs in the base
    # interpreter (which has setuptools), the result goes into a venv that cannot see
    # the base site-packages, where an installed yolo-attn would shadow the editable
    # mapping (setuptools' editable finder comes after sys.path).
    out = tmp_path_factory.mktemp("editable-wheelhouse")
    _run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_editable({str(out)!r})"],
        cwd=source,
    )
    (whl,) = out.glob("yolo_attn-*.whl")
    env = Venv(tmp_path_factory.mktemp("venv") / "editable", inherit=False)
    env.pip_install("--no-index", str(whl), cwd=env.root)
    return env


@pytest.fixture()
def stubs(tmp_path: Path) -> Path:
    """Tiny stand-ins for ``ultralytics.nn.tasks`` and ``yolo_attn.integration``.

    Put first on ``PYTHONPATH`` they shadow the real packages, so the hook's
    mechanics are tested in milliseconds and without depending on
    ``integration.py`` (owned elsewhere). ``register()`` counts its calls and
    snapshots the tasks namespace on ``sys``, and raises when ``STUB_FAIL`` is set.
    """
    for pkg in ("ultralytics", "ultralytics/nn", "yolo_attn"):
        (tmp_path / pkg).mkdir(parents=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "ultralytics/nn/tasks.py").write_text("def first(): pass\n\ndef last(): pass\n")
    (tmp_path / "yolo_attn/integration.py").write_text(
        textwrap.dedent(
            """\
            import os, sys

            def register():
                # Tests compare this with the final namespace: register() must
                # only run once tasks.py has finished executing.
                sys._names_at_register = set(vars(sys.modules["ultralytics.nn.tasks"]))
                sys._register_calls = getattr(sys, "_register_calls", 0) + 1
                if os.environ.get("STUB_FAIL"):
                    raise RuntimeError("stub failure")
            """
        )
    )
    return tmp_path


# ---------------------------------------------------------------- wheel contents


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        pth = zf.read(PTH).decode()
        start = zf.read(START).decode()
        record = zf.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()

    assert {PTH, START, HOOK} <= names, "start-up files must sit at the purelib root"
    for name in (PTH, START, HOOK):
        assert f"\n{name}," in f"\n{record}", f"{name} missing from RECORD (pip uninstall would leave it)"

    yamls = sorted(p.name for p in (REPO / "yolo_attn" / "configs").glob("*.yaml"))
    assert yamls, "no yolo_attn/configs/*.yaml in the repository"
    assert {f"yolo_attn/configs/{n}" for n in yamls} <= names

    # .pth: exactly one executable line, calling into the stdlib-only hook module.
    code = [ln for ln in pth.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert code == ["import yolo_attn_autoload; yolo_attn_autoload.install()"]
    # .start (PEP 829): same stem as the .pth (that is what suppresses the .pth's
    # import line on Python >= 3.15), one strict ``module:callable`` entry point.
    entries = [ln.strip() for ln in start.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert entries == ["yolo_attn_autoload:install"]
    assert Path(PTH).stem == Path(START).stem


# ---------------------------------------------------------------- start-up behaviour

_STARTUP_PROBE = """
    import json, sys
    import yolo_attn_autoload as hook
    print(json.dumps({
        "heavy": sorted(m for m in ("torch", "ultralytics", "yolo_attn") if m in sys.modules),
        "finders": [type(f).__name__ for f in sys.meta_path if isinstance(f, hook.AutoloadFinder)],
        "hook_file": hook.__file__,
    }))
"""


@pytest.mark.parametrize("kind", ["wheel", "editable"])
def test_startup_installs_only_the_finder(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env: Venv = request.getfixturevalue("venv" if kind == "wheel" else "editable_venv")
    for name in (PTH, START):
        assert (env.site / name).is_file(), f"{name} not installed into {env.site}"

    info = json.loads(env.py(_STARTUP_PROBE, cwd=tmp_path))
    assert info["heavy"] == [], f"start-up imported {info['heavy']}"
    assert info["finders"] == ["AutoloadFinder"], "hook must be on sys.meta_path exactly once"
    # Editable: not copied, setuptools' editable finder maps it to the source tree.
    where = env.site if kind == "wheel" else request.getfixturevalue("source")
    assert Path(info["hook_file"]) == where / HOOK


@pytest.mark.parametrize("value", ["0", "false", "No", " OFF "])
def test_env_var_disables(venv: Venv, value: str, tmp_path: Path) -> None:
    info = json.loads(venv.py(_STARTUP_PROBE, cwd=tmp_path, YOLO_ATTN_AUTOLOAD=value))
    assert info["finders"] == []


def test_start_entry_point_resolves(venv: Venv, tmp_path: Path) -> None:
    """What a PEP 829 ``site.py`` does with the .start line, done by hand."""
    out = venv.py(
        f"""
        import pkgutil, sys, yolo_attn_autoload as hook
        line = [l.strip() for l in open({str(venv.site / START)!r}) if l.strip() and not l.startswith("#")][0]
        fn = pkgutil.resolve_name(line)
        assert fn is hook.install, fn
        fn(); fn()  # a second run (e.g. .pth and .start both honoured) must not add a finder
        print(sum(isinstance(f, hook.AutoloadFinder) for f in sys.meta_path))
        """,
        cwd=tmp_path,
    )
    assert out.strip() == "1"


# ---------------------------------------------------------------- hook mechanics (stubbed)


def test_registers_once_after_tasks_executes(venv: Venv, stubs: Path) -> None:
    out = venv.py(
        """
        import importlib, sys
        import yolo_attn_autoload as hook
        assert not hasattr(sys, "_register_calls")
        import ultralytics.nn.tasks as tasks
        import ultralytics.nn.tasks  # cached: no second call
        hook.install()               # tasks already imported, but already registered
        assert set(vars(tasks)) == sys._names_at_register, "register() ran before tasks.py finished"
        print(sys._register_calls, any(isinstance(f, hook.AutoloadFinder) for f in sys.meta_path))
        """,
        cwd=stubs,
        PYTHONPATH=str(stubs),
    )
    assert out.split() == ["1", "False"]


def test_registers_immediately_if_tasks_already_imported(venv: Venv, stubs: Path) -> None:
    out = venv.py(
        """
        import os, sys
        import ultralytics.nn.tasks  # auto-load is off: nothing happens
        assert not hasattr(sys, "_register_calls")
        os.environ["YOLO_ATTN_AUTOLOAD"] = "1"
        import yolo_attn_autoload as hook
        hook.install()
        hook.install()
        print(sys._register_calls)
        """,
        cwd=stubs,
        PYTHONPATH=str(stubs),
        YOLO_ATTN_AUTOLOAD="0",
    )
    assert out.strip() == "1"


def test_env_var_read_again_when_hook_fires(venv: Venv, stubs: Path) -> None:
    out = venv.py(
        """
        import os, sys
        os.environ["YOLO_ATTN_AUTOLOAD"] = "off"
        import ultralytics.nn.tasks
        print(getattr(sys, "_register_calls", 0))
        """,
        cwd=stubs,
        PYTHONPATH=str(stubs),
    )
    assert out.strip() == "0"


def test_failing_register_warns_and_import_survives(venv: Venv, stubs: Path) -> None:
    proc = subprocess.run(
        [str(venv.python), "-c", "import sys, ultralytics.nn.tasks; print('imported', sys._register_calls)"],
        cwd=stubs,
        env=_clean_env(PYTHONPATH=str(stubs), STUB_FAIL="1"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["imported", "1"]
    assert "YoloAttnAutoloadWarning" in proc.stderr
    assert "yolo-attn" in proc.stderr and "YOLO_ATTN_AUTOLOAD=0" in proc.stderr and "stub failure" in proc.stderr


def test_strict_mode_reraises(venv: Venv, stubs: Path) -> None:
    proc = subprocess.run(
        [str(venv.python), "-c", "import ultralytics.nn.tasks"],
        cwd=stubs,
        env=_clean_env(PYTHONPATH=str(stubs), STUB_FAIL="1", YOLO_ATTN_AUTOLOAD="strict"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "RuntimeError: stub failure" in proc.stderr


# ---------------------------------------------------------------- real Ultralytics


def test_real_ultralytics_calls_register(venv: Venv, stubs: Path) -> None:
    """The real ``ultralytics.nn.tasks`` (torch and all) goes through the wrapped loader."""
    shutil.rmtree(stubs / "ultralytics")  # keep only the stub integration
    out = venv.py(
        """
        import inspect, sys
        import ultralytics.nn.tasks as tasks
        assert sys._register_calls == 1 and set(vars(tasks)) == sys._names_at_register
        assert "def parse_model" in inspect.getsource(tasks)  # loader left intact
        print(tasks.__file__)
        """,
        cwd=stubs,
        PYTHONPATH=str(stubs),
    )
    assert "site-packages" in out


def test_ultralytics_import_registers_self_attention_block(venv: Venv, tmp_path: Path) -> None:
    out = venv.py(
        """
        import json, sys
        import ultralytics.nn.tasks as tasks
        import yolo_attn
        print(json.dumps({"registered": "SelfAttentionBlock" in vars(tasks), "pkg": yolo_attn.__file__}))
        """,
        cwd=tmp_path,
    )
    info = json.loads(out.strip().splitlines()[-1])
    assert Path(info["pkg"]).is_relative_to(venv.root), f"imported {info['pkg']}, not the wheel's copy"
    assert info["registered"]

    off = venv.py(
        "import ultralytics.nn.tasks as t; print('SelfAttentionBlock' in vars(t))",
        cwd=tmp_path,
        YOLO_ATTN_AUTOLOAD="0",
    )
    assert off.strip().splitlines()[-1] == "False"
