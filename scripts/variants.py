"""Model specs with SelfAttentionBlock settings overridden, for side-by-side sweeps without editing configs.

A spec is a model YAML, optionally followed by `:key=value,...` naming SelfAttentionBlock arguments
(`type, head_dim, reduction, scale, pos, kv_tokens, attn_drop, mlp_ratio`), applied to every SelfAttentionBlock row:

    configs/yolov8n-attn.yaml:head_dim=64,kv_tokens=400

A spec may end with `+key=value,...`: training arguments for that model's runs only (`yolov8n.yaml+optimizer=auto`,
`configs/yolov8n-attn.yaml+attn_lr=10,attn_wd=0`), which `split_train` separates and scripts/compare.py applies.

`materialize(spec, folder)` writes the modified YAML there (named so Ultralytics still reads the scale from it)
and returns its path, which `YOLO(...)`, `DetectionModel(...)` and `yolo train model=...` all accept.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BLOCK_ARGS = ("type", "head_dim", "reduction", "scale", "pos", "kv_tokens", "attn_drop", "mlp_ratio")  # after c1
BLOCK_DEFAULTS = ("standard", 32, None, None, True, 0, 0.0, 0.0)


def _value(key: str, text: str):
    if text in ("null", "None"):
        return None
    if key == "type":
        return text
    if key == "pos":
        return text.lower() in ("1", "true", "yes")
    return float(text) if key in ("attn_drop", "mlp_ratio") else int(text)


def split_train(spec: str) -> tuple[str, dict]:
    """'yolov8n.yaml+optimizer=auto,attn_lr=10' -> ('yolov8n.yaml', {'optimizer': 'auto', 'attn_lr': 10})."""
    spec, sep, opts = spec.partition("+")
    over = {}
    for item in opts.split(",") if sep else ():
        key, eq, text = item.partition("=")
        if not eq:
            raise SystemExit(f"training argument {item!r} in {spec}+{opts!r} is not key=value")
        over[key] = yaml.safe_load(text)  # numbers, booleans and null as in a YAML row
    return spec, over


def split_spec(spec: str) -> tuple[str, dict]:
    """'configs/yolov8n-attn.yaml:head_dim=64,kv_tokens=400' -> ('configs/yolov8n-attn.yaml', {...})."""
    spec = split_train(spec)[0]
    path, sep, opts = spec.rpartition(":")
    if not sep or "=" not in opts:
        return spec, {}
    over = {}
    for item in opts.split(","):
        key, _, text = item.partition("=")
        if key not in BLOCK_ARGS:
            raise SystemExit(f"unknown SelfAttentionBlock argument {key!r} in {spec!r}; choose from {BLOCK_ARGS}")
        over[key] = _value(key, text)
    return path, over


def label(spec: str) -> str:
    """Short display name: 'yolov8n-attn[head_dim=64,kv_tokens=400]', 'yolov8n+optimizer=auto'."""
    path, over = split_spec(spec)
    train = split_train(spec)[1]
    name = Path(path).name.removesuffix(".yaml").removesuffix(".yml")
    name += f"[{','.join(f'{k}={v}' for k, v in over.items())}]" if over else ""
    return name + (f"+{','.join(f'{k}={v}' for k, v in train.items())}" if train else "")


def resolve(path: str) -> str:
    """A config path given relative to the repository (configs/...) works from any directory.

    Checked by folder: `configs/yolov8n-attn.yaml` names no file (Ultralytics reads the scale from the name).
    """
    p = Path(path)
    if p.exists() or p.parent == Path(".") or p.is_absolute():
        return path
    return str(REPO / p) if (REPO / p.parent).is_dir() else path


def materialize(spec: str, folder: str | Path) -> str:
    """Return a YAML path for `spec`: the config itself, or a copy with its SelfAttentionBlock rows overridden."""
    path, over = split_spec(spec)
    path = resolve(path)
    if not over:
        return path
    from ultralytics.nn.tasks import yaml_model_load
    from ultralytics.utils import YAML

    d = yaml_model_load(path)  # the scale-less file with `scale` guessed from the name
    rows = [r for r in d["backbone"] + d["head"] if r[2] == "SelfAttentionBlock"]
    if not rows:
        raise SystemExit(f"{spec!r} overrides SelfAttentionBlock arguments, but {path} has no such row")
    for r in rows:
        args = list(r[3]) + list(BLOCK_DEFAULTS[len(r[3]) :])
        for k, v in over.items():
            args[BLOCK_ARGS.index(k)] = v
        r[3] = args
    scale = d.pop("scale", "")
    d.pop("yaml_file", None)
    if scale:  # one fixed scale: the file below is named for it
        d["scales"] = {scale: d["scales"][scale]}
    stem = Path(path).stem + "-" + "-".join(f"{k}{v}" for k, v in over.items()).replace("_", "")
    out = Path(folder) / f"{stem}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    YAML.save(out, d)
    return str(out)
