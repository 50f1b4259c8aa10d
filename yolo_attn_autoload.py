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

* ``0`` / ``false`` / ``no`` / ``off`` (any case): do not register.  Read both
  at start-up and when the hook fires, so setting it in ``os.environ`` before
  importing Ultralytics also works.  Only a hint is armed (a stdlib-only
  ``sys.meta_path`` entry, :class:`HintFinder`): once ``ultralytics.nn.tasks``
  has executed, its ``parse_model`` is wrapped (:func:`wrap_parse_model`) so that a model YAML naming a
  yolo-attn layer fails with :class:`YoloAttnNotLoadedError`, saying why and
  how to fix it, instead of a bare ``KeyError: 'SelfAttentionBlock'``.
* ``strict``: re-raise a failure inside ``register()`` instead of warning.
* anything else or unset: auto-load, warn on failure.

Failure policy: by default a failing ``register()`` emits a
:class:`YoloAttnAutoloadWarning` naming yolo-attn and the variable above, and
the import of Ultralytics goes on.  A broken plugin should not take down
``yolo`` for users training stock models; models that need the attention
layers still fail at YAML parse time, with a :class:`YoloAttnNotLoadedError`
that points back at the warning.
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

# THE one list of the plugin's layer classes: name -> (module, whether a model YAML may name it). The registry, the
# safe-load allow-list, `yolo_attn.__all__` and the parse_model hint below all derive from it; it lives here, as
# plain strings, because this module must not import the plugin (and so torch).
LAYERS = {
    "Attention2d": ("yolo_attn.layers.attention2d", False),
    "EfficientSelfAttention": ("yolo_attn.layers.attention2d", True),
    "PositionalEncoding": ("yolo_attn.layers.pos_embed", False),
    "PositionalEncoding2d": ("yolo_attn.layers.pos_embed", True),
    "SelfAttention": ("yolo_attn.layers.attention", False),
    "SelfAttentionBlock": ("yolo_attn.layers.block", True),
    "SpatialSelfAttention": ("yolo_attn.layers.attention2d", True),
    "TransformerEncoder": ("yolo_attn.layers.transformer", True),
    "TransformerEncoderLayer": ("yolo_attn.layers.transformer", True),
}

# The names a model YAML may use for yolo-attn layers.
LAYER_NAMES = frozenset(name for name, (_, in_yaml) in LAYERS.items() if in_yaml)

# Module paths of yolo-attn 0.1.0 -> where that code lives now. Checkpoints pickled the old paths of the layer
# classes, and users imported the old modules: `import yolo_attn` makes each old name an alias of the new module.
LEGACY_MODULES = {
    "yolo_attn._checks": "yolo_attn.layers.checks",
    "yolo_attn.attention": "yolo_attn.layers.attention",
    "yolo_attn.attention2d": "yolo_attn.layers.attention2d",
    "yolo_attn.block": "yolo_attn.layers.block",
    "yolo_attn.config": "yolo_attn.layers.switches",
    "yolo_attn.export": "yolo_attn.layers.pooling",
    "yolo_attn.pos_embed": "yolo_attn.layers.pos_embed",
    "yolo_attn.registry": "yolo_attn.integration.registry",
    "yolo_attn.transfer": "yolo_attn.integration.transfer",
    "yolo_attn.transformer": "yolo_attn.layers.transformer",
}


def layer_paths(name: str) -> "list[str]":
    """Every dotted path a pickle may name layer class `name` by: its module now, then its 0.1.0 module(s)."""
    module = LAYERS[name][0]
    return [f"{module}.{name}"] + [f"{old}.{name}" for old, new in LEGACY_MODULES.items() if new == module]


_registered = False
_forced = False  # set by an explicit `import yolo_attn`: the user opted in, whatever the environment says
_failure = ""  # "Type: message" of a failed register(), for the parse_model hint
_off_value = ""  # the YOLO_ATTN_AUTOLOAD value that kept the hook from registering, for the parse_model hint


class YoloAttnAutoloadWarning(RuntimeWarning):
    """Emitted when automatic registration of yolo-attn fails."""


class YoloAttnNotLoadedError(KeyError, ValueError):
    """A model YAML names a yolo-attn layer, but yolo-attn is not registered with Ultralytics.

    A ``KeyError`` (what ``parse_model`` raised before the hint existed, so existing handlers still catch it) and a
    ``ValueError`` (a bad model config), whose message reads as plain text rather than a quoted key.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _mode() -> str:
    return os.environ.get(ENV_VAR, "").strip().lower()


def enabled() -> bool:
    """Return whether ``YOLO_ATTN_AUTOLOAD`` allows auto-loading."""
    return _mode() not in _OFF


class _TasksFinder:
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
            if isinstance(finder, _TasksFinder) or find_spec is None:
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
        return f"<yolo_attn_autoload.{type(self).__name__} for {TARGET!r}>"


class AutoloadFinder(_TasksFinder):
    """Installed when auto-loading is on: registers yolo-attn once :data:`TARGET` has executed."""


class HintFinder(_TasksFinder):
    """Installed when auto-loading is off: once :data:`TARGET` has executed, wraps ``parse_model`` with the hint.

    (Should ``YOLO_ATTN_AUTOLOAD`` have been switched on by then, it registers instead, as :class:`AutoloadFinder`.)
    """


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
        _on_tasks_loaded(module)

    loader.exec_module = exec_then_register  # type: ignore[attr-defined]


def _installed(kind: type = _TasksFinder) -> bool:
    return any(isinstance(f, kind) for f in sys.meta_path)


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TasksFinder)]


def _on_tasks_loaded(tasks: "ModuleType") -> None:
    """Register if allowed now; otherwise (or if registering failed) make ``parse_model`` explain a missing layer."""
    global _off_value
    _register()
    if not _registered or _failure:
        if not _registered:
            _off_value = os.environ.get(ENV_VAR, "")
        wrap_parse_model(tasks)


def _unwrap(func: object) -> object:
    while hasattr(func, "__wrapped__"):
        func = func.__wrapped__  # type: ignore[attr-defined]
    return func


def mark_patch(wrapper: "Callable", original: "Callable") -> "Callable":
    """Mark `wrapper` as yolo-attn's patch of `original` (idempotence flag, `__wrapped__`, name, doc); returns it."""
    wrapper._yolo_attn = True  # type: ignore[attr-defined]
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    wrapper.__name__ = getattr(original, "__name__", wrapper.__name__)
    wrapper.__qualname__ = getattr(original, "__qualname__", wrapper.__qualname__)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    return wrapper


class YoloAttnUnknownLayerError(KeyError, ValueError):
    """A model YAML names a layer that does not exist, close to a yolo-attn layer's name (a typo).

    A ``KeyError``, as ``parse_model``'s own error for an unknown name, and a ``ValueError`` (a bad model config).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _row(loc: dict, name: object) -> str:
    """A YAML row as the user wrote it, from parse_model's locals: 'row 3 [-1, 1, Name, [args]]'."""
    return f"row {loc.get('i')} [{loc.get('f')}, {loc.get('n')}, {name}, {loc.get('args')}]"


def _explain_key_error(e: KeyError, tasks: "ModuleType", code: object) -> "Exception | None":
    """The error to raise instead of parse_model's bare KeyError for a YAML layer name, or None to keep it."""
    name = e.args[0] if len(e.args) == 1 else None
    if not isinstance(name, str) or name in vars(tasks):
        return None
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame if tb is not None else None
    if code is not None and (frame is None or frame.f_code is not code):
        return None  # not parse_model's own lookup of a YAML module name
    loc = frame.f_locals if frame is not None else {}
    if name in LAYER_NAMES:
        return YoloAttnNotLoadedError(_not_loaded_message(name, loc.get("i")))
    import difflib

    close = difflib.get_close_matches(name, sorted(LAYER_NAMES), n=1, cutoff=0.8)
    if not close:
        return None  # not near any of ours: Ultralytics' own error
    return YoloAttnUnknownLayerError(
        f"yolo-attn: model YAML {_row(loc, name)}: no layer named {name!r}; did you mean {close[0]}?"
    )


def _explain_row_error(e: Exception, code: object) -> "Exception | None":
    """The error to raise when parse_model fails on a yolo-attn row before the layer is built, or None to keep it.

    Ultralytics computes a row's channels (``ch[f]``) before building the layer, so a row reading several layers
    (``[[-1, 12], 1, SelfAttentionBlock, ...]``) fails inside parse_model with a bare "list indices" TypeError.
    """
    if str(e).startswith("yolo-attn:"):
        return None
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next
    loc = tb.tb_frame.f_locals if tb is not None else {}
    layer = getattr(loc.get("m"), "layer", None)
    if not getattr(loc.get("m"), "_yolo_attn_factory", False) or layer is None:
        return None
    f, name = loc.get("f"), layer.__name__
    return ValueError(
        f"yolo-attn: model YAML {_row(loc, name)}: {name} reads one layer, so 'from' must be a single index, "
        f"got {f!r} ({type(e).__name__}: {e})."
    )


def wrap_parse_model(tasks: "ModuleType") -> None:
    """Wrap ``tasks.parse_model`` once, so that its errors on a YAML row say what is wrong with the row.

    * a yolo-attn layer name while yolo-attn is not registered: :class:`YoloAttnNotLoadedError`, saying why;
    * a name close to a yolo-attn layer's (a typo): :class:`YoloAttnUnknownLayerError`, "did you mean ...?";
    * a yolo-attn row whose 'from' is a list: a ValueError naming the row.

    Stdlib only and free until it fires. Called by the hook when auto-loading is off and by
    ``yolo_attn.integration.register()``; the second call changes nothing. The real function stays reachable as
    ``parse_model.__wrapped__``.
    """
    original = vars(tasks).get("parse_model")
    if original is None or getattr(original, "_yolo_attn", False):
        return
    code = getattr(_unwrap(original), "__code__", None)

    def parse_model(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except KeyError as e:
            better = _explain_key_error(e, tasks, code)
            if better is None:
                raise
            raise better from None
        except (TypeError, IndexError) as e:
            better = _explain_row_error(e, code)
            if better is None:
                raise
            raise better from None

    tasks.parse_model = mark_patch(parse_model, original)  # type: ignore[attr-defined]
    # A package that re-exported it already (install() after the import) keeps the unwrapped one otherwise.
    package = sys.modules.get(TARGET.rpartition(".")[0])
    if package is not None and vars(package).get("parse_model") is original:
        package.parse_model = parse_model  # type: ignore[attr-defined]


def _not_loaded_message(name: str, row: object) -> str:
    if _failure:
        why = (
            f"yolo-attn failed to register with Ultralytics ({_failure}): see the YoloAttnAutoloadWarning above, or "
            f"set {ENV_VAR}=strict to raise that error where it happens"
        )
    else:
        why = (
            f"yolo-attn auto-loading is disabled ({ENV_VAR}={_off_value.strip()}): unset it or `import yolo_attn` "
            "before building the model"
        )
    where = f" (YAML row {row})" if isinstance(row, int) else ""
    return f"model YAML names {name}, a yolo-attn layer, but {why}{where}."


def _register() -> None:
    global _registered, _failure
    if _registered or not (enabled() or _forced):
        return
    _registered = True
    try:
        from yolo_attn.integration import register

        register()
    except Exception as exc:
        if _mode() == "strict":
            raise
        _failure = f"{type(exc).__name__}: {exc}"
        import warnings

        warnings.warn(
            f"yolo-attn: automatic registration with Ultralytics failed "
            f"({type(exc).__name__}: {exc}); its attention layers are not "
            f"available to model YAMLs. Set {ENV_VAR}=0 to disable auto-loading, "
            f"or {ENV_VAR}=strict to raise this error instead.",
            YoloAttnAutoloadWarning,
        )


def install(force: bool = False) -> None:
    """Arrange for ``yolo_attn.integration.register()`` to run once (with auto-loading off: for the hint only).

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
    if _registered:
        return
    if TARGET in sys.modules:
        # Already imported: a finder would never be consulted for it again.
        _on_tasks_loaded(sys.modules[TARGET])
    elif enabled() or _forced:
        if not _installed(AutoloadFinder):
            _uninstall()  # a HintFinder from a start-up with auto-loading off
            sys.meta_path.insert(0, AutoloadFinder())
    elif not _installed():
        sys.meta_path.insert(0, HintFinder())
