"""Start-up hook that registers yolo-attn with Ultralytics without a user import.

Installed as a *top-level* module next to ``yolo_attn-autoload.pth`` and
``yolo_attn-autoload.start`` in site-packages, and run at every interpreter
start-up by one of them (PEP 829: a ``.start`` file supersedes the ``import``
lines of the same-named ``.pth`` on Pythons that understand it, so ``install``
runs once either way).  It lives outside the ``yolo_attn`` package because
importing anything under ``yolo_attn`` runs ``yolo_attn/__init__.py``, which
imports torch.

Start-up cost is one ``sys.meta_path`` entry: this module imports nothing that
``site`` has not already imported.  The expensive part,
``yolo_attn.integration.register()``, runs only when ``ultralytics.nn.tasks``
has finished executing (or at once, if it already had when ``install`` runs).
Fresh interpreters (DDP workers, spawned data loaders, the ``yolo`` CLI) run
``site`` and so get the hook too; ``python -S`` skips ``site`` and with it us.

Environment variable ``YOLO_ATTN_AUTOLOAD``:

* ``0`` / ``false`` / ``no`` / ``off`` (any case): do nothing.  Read both at
  start-up and when the hook fires, so setting it in ``os.environ`` before
  importing Ultralytics also works.
* ``strict``: re-raise a failure inside ``register()`` instead of warning.
* anything else or unset: auto-load, warn on failure.

Failure policy: by default a failing ``register()`` emits a
:class:`YoloAttnAutoloadWarning` naming yolo-attn and the variable above, and
the import of Ultralytics goes on.  A broken plugin should not take down
``yolo`` for users training stock models; models that need the attention
layers still fail at YAML parse time with Ultralytics' own error, right after
the warning that explains why.
"""

import os
import sys

TYPE_CHECKING = False  # recognised by type checkers; saves importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

TARGET = "ultralytics.nn.tasks"
ENV_VAR = "YOLO_ATTN_AUTOLOAD"
_OFF = frozenset({"0", "false", "no", "off"})

_registered = False
_forced = False  # set by an explicit `import yolo_attn`: the user opted in, whatever the environment says


class YoloAttnAutoloadWarning(RuntimeWarning):
    """Emitted when automatic registration of yolo-attn fails."""


def _mode() -> str:
    return os.environ.get(ENV_VAR, "").strip().lower()


def enabled() -> bool:
    """Return whether ``YOLO_ATTN_AUTOLOAD`` allows auto-loading."""
    return _mode() not in _OFF


class AutoloadFinder:
    """``sys.meta_path`` finder that only ever answers for :data:`TARGET`.

    It asks the finders behind it for the real spec and wraps that spec's
    loader, so the module is loaded exactly as it would be without us (same
    loader object, so ``inspect.getsource`` and friends keep working); we just
    get called once its code has run.  Not an ``importlib.abc`` subclass, to
    avoid importing ``importlib.abc`` at every start-up.
    """

    def find_spec(
        self,
        fullname: str,
        path: "Sequence[str] | None" = None,
        target: "ModuleType | None" = None,
    ) -> "ModuleSpec | None":
        if fullname != TARGET:
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec: ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec
        _wrap_exec_module(loader, exec_module)
        return spec

    def __repr__(self) -> str:
        return f"<yolo_attn_autoload.AutoloadFinder for {TARGET!r}>"


def _wrap_exec_module(loader: object, exec_module: "Callable[[ModuleType], None]") -> None:
    # An instance attribute shadows the class method for this one loader only.
    def exec_then_register(module: "ModuleType") -> None:
        exec_module(module)
        if module.__name__ != TARGET:
            return  # a loader shared by many modules (frozen apps) loaded another one
        # Only after success: if the module raised, the next import attempt
        # gets a fresh spec from our finder, which is still installed.
        try:
            del loader.exec_module  # type: ignore[attr-defined]
        except AttributeError:
            pass
        _uninstall()
        _register()

    loader.exec_module = exec_then_register  # type: ignore[attr-defined]


def _installed() -> bool:
    return any(isinstance(f, AutoloadFinder) for f in sys.meta_path)


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AutoloadFinder)]


def _register() -> None:
    global _registered
    if _registered or not (enabled() or _forced):
        return
    _registered = True
    try:
        from yolo_attn.integration import register

        register()
    except Exception as exc:
        if _mode() == "strict":
            raise
        import warnings

        warnings.warn(
            f"yolo-attn: automatic registration with Ultralytics failed "
            f"({type(exc).__name__}: {exc}); its attention layers are not "
            f"available to model YAMLs. Set {ENV_VAR}=0 to disable auto-loading, "
            f"or {ENV_VAR}=strict to raise this error instead.",
            YoloAttnAutoloadWarning,
        )


def install(force: bool = False) -> None:
    """Arrange for ``yolo_attn.integration.register()`` to run once.

    Entry point of ``yolo_attn-autoload.pth`` / ``yolo_attn-autoload.start``.
    Idempotent, so it may be reached from several site directories (e.g. a
    ``--system-site-packages`` venv and its base interpreter both holding a
    copy).  Never raises at start-up unless ``YOLO_ATTN_AUTOLOAD=strict``.

    Args:
        force: register even when ``YOLO_ATTN_AUTOLOAD`` is off; ``import yolo_attn`` passes True, since
            importing the plugin by hand is an explicit opt-in.
    """
    global _forced
    _forced = _forced or force
    if _registered or not (enabled() or _forced):
        return
    if TARGET in sys.modules:
        # Already imported: a finder would never be consulted for it again.
        _register()
    elif not _installed():
        sys.meta_path.insert(0, AutoloadFinder())
