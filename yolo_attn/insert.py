"""Insert attention rows into any Ultralytics model YAML, fixing every `from` index.

`add_attention(cfg, where, block)` returns a new model dict. "After row i" means: the new row reads i, and every
later reference to i (absolute or negative, the next row's `-1` and the head's inputs included) reads the new row
instead, so the attention output replaces row i's output downstream. `where`:
- `"neck"`: after each input of the model's output row (Detect, Segment, Pose, OBB, v10Detect, YOLOE, RT-DETR, ...;
  for a classifier its single input, the end of the backbone);
- `"backbone"`: after the last row of the backbone;
- `"I,J,..."` (or a list of ints): after those rows, counted over backbone + head as Ultralytics numbers them.

Ultralytics is never imported: its package directory is only located to read its YAMLs by name.
`python -m yolo_attn.insert --regenerate [--check]` writes (or compares) the configs shipped with yolo-attn that
this tool generates.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["DEFAULT_BLOCK", "SHIPPED", "Insertion", "add_attention", "insert", "load_config", "parse_block", "render"]

CONFIG_DIR = Path(__file__).parent / "configs"
DEFAULT_BLOCK = "SelfAttentionBlock[standard, 64, null, null, True, 400]"  # the row of configs/yolov8-attn.yaml
_SCALED = re.compile(r"(\d+)([nslmx])(.+)?$")  # Ultralytics' yaml_model_load: yolo11n-seg -> yolo11-seg

# Configs shipped with yolo-attn that this tool generates: file -> (Ultralytics source, where, extra header lines).
_CAPPED = (
    "Global multi-head attention (head_dim 64, 2-D sincos position), keys/values capped at 400 tokens (20x20):",
    "exact global attention on maps up to 20x20 (P5 at 640 px), average-pooled keys/values above (P3 at 640: 4x4,",
    "P4: 2x2), so cost stays linear in pixels at any image size. Identity at insertion (zero-initialised output",
    "projection): warm-start it from the stock checkpoint of the same family, task and scale.",
)
SHIPPED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    f"{family}{task}-attn.yaml": (f"{family}{task}.yaml", "backbone" if task == "-cls" else "neck", _CAPPED)
    for family in ("yolov8", "yolo11")
    for task in ("", "-seg", "-pose", "-obb", "-cls")
}
COST_LINE = re.compile(r"^# Cost at scale n, 640 px:.*$", re.M)  # kept as scripts/config_costs.py writes it


@dataclass(frozen=True)
class Insertion:
    """What `insert` did: rows of the source it inserted after, and where the new rows are in the result."""

    source: str
    where: str
    after: tuple[int, ...]
    new_rows: tuple[int, ...]
    block: list

    def describe(self) -> str:
        name, args = self.block
        rows = "rows" if len(self.after) > 1 else "row"
        return (f"{name}[{', '.join(_flow(a) for a in args)}] after {rows} {_ints(self.after)} of {self.source} "
                f"({self.where}), now {rows} {_ints(self.new_rows)}")


def _ints(xs: Sequence[int]) -> str:
    return ", ".join(map(str, xs))


# ------------------------------------------------------------------------------------------------ inputs
def _ultralytics_models() -> Path | None:
    """Ultralytics' cfg/models directory, located without importing Ultralytics."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "cfg" / "models"


def _find(name: str) -> Path | None:
    """A bare config name (scaled or not) in Ultralytics' YAMLs, then in yolo-attn's."""
    stems = [Path(name).stem, _SCALED.sub(r"\1\3", Path(name).stem)]
    models = _ultralytics_models()
    for stem in dict.fromkeys(stems):
        hits = sorted(models.rglob(f"{stem}.yaml")) if models and models.is_dir() else []
        if hits:
            return hits[0]
        if (CONFIG_DIR / f"{stem}.yaml").is_file():
            return CONFIG_DIR / f"{stem}.yaml"
    return None


def load_config(cfg: str | Path | dict) -> tuple[dict, str]:
    """Return (a deep copy of the model dict, its name) for a path, a bare config name or a dict."""
    if isinstance(cfg, dict):
        d, name = copy.deepcopy(cfg), str(cfg.get("yaml_file") or "the given model dict")
    else:
        path = Path(cfg)
        if not path.is_file():
            if path.name != str(cfg) or not (found := _find(path.name)):
                raise FileNotFoundError(
                    f"yolo-attn: no model YAML {str(cfg)!r}: not a file, nor a config Ultralytics or yolo-attn ships "
                    "(give a path, or a name like yolo11n-seg.yaml)."
                )
            path = found
        d, name = yaml.safe_load(path.read_text()), path.name
    if not isinstance(d, dict) or not isinstance(d.get("backbone"), list) or not isinstance(d.get("head"), list):
        raise ValueError(f"yolo-attn: {name} is not an Ultralytics model YAML (needs 'backbone' and 'head' lists).")
    for key in ("scale", "yaml_file", "ch"):  # what Ultralytics adds when it loads a YAML; not part of a config
        d.pop(key, None)
    return d, Path(name).name


def parse_block(block: str | Sequence) -> list:
    """`"SelfAttentionBlock[efficient, 64]"` (or `[name, [args]]`) -> `[name, [args]]`, args read by yaml.safe_load."""
    from .integration import registry

    if isinstance(block, str):
        m = re.fullmatch(r"\s*([A-Za-z_][\w.]*)\s*(\[.*\])?\s*", block, re.S)
        if not m:
            raise ValueError(f"yolo-attn: block {block!r} is not 'Layer[arg, ...]', e.g. {DEFAULT_BLOCK!r}.")
        try:
            args = yaml.safe_load(m.group(2)) if m.group(2) else []
        except yaml.YAMLError as e:
            raise ValueError(f"yolo-attn: block {block!r}: its arguments are not a YAML list ({e}).") from None
        name = m.group(1)
    else:
        name, args = (list(block) + [[]])[:2]
    if name not in registry.layers():
        raise ValueError(f"yolo-attn: block layer {name!r} is not a yolo-attn layer; use one of "
                         f"{', '.join(registry.layers())}.")
    if not isinstance(args, list):
        raise ValueError(f"yolo-attn: block {name} arguments must be a list, got {args!r}.")
    return [name, args]


# ------------------------------------------------------------------------------------------------ placement
def _froms(k: int, f) -> list[int]:
    return [j if j >= 0 else k + j for j in ([f] if isinstance(f, int) else f)]


def _rows_after(d: dict, where: str | Sequence[int], name: str) -> list[int]:
    """The rows to insert after, validated; errors list the valid rows."""
    rows = d["backbone"] + d["head"]
    last = len(rows) - 1
    out_f, out_m = rows[-1][0], rows[-1][2]
    if isinstance(where, str) and where.strip() == "neck":
        after = _froms(last, out_f)
    elif isinstance(where, str) and where.strip() == "backbone":
        after = [len(d["backbone"]) - 1]
    else:
        try:
            after = [int(x) for x in (where.split(",") if isinstance(where, str) else where)]
        except (TypeError, ValueError):
            raise ValueError(f"yolo-attn: placement {where!r} for {name}: use 'neck', 'backbone' or row indices "
                             f"'I,J,...' from 0 to {last - 1}.") from None
    valid = f"valid rows are 0..{last - 1} (row {last} is the output layer {out_m}, which reads {out_f})"
    bad = [i for i in after if not 0 <= i < last]
    if bad:
        raise ValueError(f"yolo-attn: cannot insert after row(s) {_ints(bad)} of {name}: {valid}.")
    if len(set(after)) != len(after):
        raise ValueError(f"yolo-attn: placement {where!r} for {name} names a row twice ({_ints(after)}); "
                         "one inserted row per place.")
    if not after:
        raise ValueError(f"yolo-attn: placement {where!r} for {name} names no row; {valid}.")
    return sorted(after)


def insert(cfg: str | Path | dict, where: str | Sequence[int] = "neck",
           block: str | Sequence = DEFAULT_BLOCK) -> tuple[dict, Insertion]:
    """`add_attention`, also returning what was inserted where (for the header comment)."""
    d, name = load_config(cfg)
    row = parse_block(block)
    after = _rows_after(d, where, name)
    n_back = len(d["backbone"])
    rows = d["backbone"] + d["head"]
    shift = [sum(s < j for s in after) for j in range(len(rows) + 1)]

    def new(j: int) -> int:  # new index of old row j
        return j + shift[j]

    def reads(j: int) -> int:  # what a later reference to old row j reads now
        return new(j) + 1 if j in after else new(j)

    def fix(k: int, f):
        def one(j: int):
            if j >= 0:
                return reads(j)
            if k + j < 0:  # the model input
                return j
            return reads(k + j) - new(k)

        return one(f) if isinstance(f, int) else [one(j) for j in f]

    backbone, head = [], []
    for k, (f, n, m, args) in enumerate(rows):
        (backbone if k < n_back else head).append([fix(k, f), n, m, args])
        if k in after:
            (backbone if k < n_back else head).append([-1, 1, row[0], copy.deepcopy(row[1])])
    d["backbone"], d["head"] = backbone, head
    where_text = where if isinstance(where, str) else ",".join(map(str, where))
    info = Insertion(name, where_text, tuple(after), tuple(new(s) + 1 for s in after), row)
    return d, info


def add_attention(cfg: str | Path | dict, where: str | Sequence[int] = "neck",
                  block: str | Sequence = DEFAULT_BLOCK) -> dict:
    """Return the model dict of `cfg` with a `block` row inserted at `where` (see the module docstring).

    Args:
        cfg: a model YAML path, a bare Ultralytics or yolo-attn config name (`yolo11n-seg.yaml`), or a model dict.
        where: `"neck"`, `"backbone"`, `"I,J,..."` or a list of row indices.
        block: `"Layer[args]"` as in a YAML row (e.g. `"SelfAttentionBlock[efficient, 64]"`) or `[name, [args]]`.

    Raises:
        FileNotFoundError: `cfg` names no file or shipped config.
        ValueError: an unknown placement or block; the message lists the valid rows or layers.
    """
    return insert(cfg, where, block)[0]


# ------------------------------------------------------------------------------------------------ output
def _flow(x) -> str:
    """One YAML flow value that yaml.safe_load reads back as `x` (True/None written as in Ultralytics' YAMLs)."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(_flow(v) for v in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(v)}" for k, v in x.items()) + "}"
    text = str(x) if isinstance(x, (int, float, str)) else json.dumps(x)
    try:
        same = yaml.safe_load(f"[{text}]") == [x]
    except yaml.YAMLError:
        same = False
    return text if same and text.strip() == text and text else json.dumps(x)


def render(d: dict, info: Insertion, name: str, extra: Sequence[str] = (), how: str = "python -m yolo_attn add") -> str:
    """The YAML text of a model dict from `insert`: a header saying what was inserted where, one row per line."""
    lines = [f"# yolo-attn {name}: generated by `{how}`; regenerate rather than edit.",
             f"# yolo-attn: {info.describe()}.", *(f"# {x}" for x in extra), ""]
    for key, value in d.items():
        if key in ("backbone", "head"):
            continue
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {_flow(k)}: {_flow(v)}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {_flow(value)}")
    k = 0
    for section in ("backbone", "head"):
        lines += ["", f"{section}:", "  # [from, repeats, module, args]"]
        for r in d[section]:
            mark = " inserted" if k in info.new_rows else ""
            lines.append(f"  - {_flow(r)} # {k}{mark}")
            k += 1
    return "\n".join(lines) + "\n"


def regenerate(check: bool = False, out_dir: Path = CONFIG_DIR) -> list[str]:
    """Write every config in SHIPPED (or, with `check`, only compare); return the names that were stale."""
    stale = []
    for name, (source, where, extra) in SHIPPED.items():
        d, info = insert(source, where)
        path = out_dir / name
        old = path.read_text() if path.is_file() else ""
        cost = COST_LINE.search(old)
        extra = (*extra, *([cost.group()[2:]] if cost else []))
        text = render(d, info, name, extra, how="python -m yolo_attn.insert --regenerate")
        if text != old:
            stale.append(name)
            if not check:
                path.write_text(text)
    return stale


def main(argv: list[str] | None = None, prog: str = "python -m yolo_attn add") -> int:
    """CLI: `add MODEL.yaml --where ... [--block ...] -o OUT.yaml`, or `--regenerate [--check]` (shipped configs)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", help="model YAML: a path or a bare name (yolo11n-seg.yaml, yolov8-pose.yaml)")
    p.add_argument("--where", default="neck", help="neck | backbone | I,J,... (rows to insert after; default neck)")
    p.add_argument("--block", default=DEFAULT_BLOCK, help=f"the row to insert (default {DEFAULT_BLOCK!r})")
    p.add_argument("-o", "--output", help="file to write (default: print to stdout)")
    p.add_argument("--regenerate", action="store_true", help="rewrite the shipped configs this tool generates")
    p.add_argument("--check", action="store_true", help="with --regenerate: only compare; exit 1 when stale")
    args = p.parse_args(argv)
    if args.regenerate:
        stale = regenerate(check=args.check)
        print(f"{'stale' if args.check else 'rewritten'}: {', '.join(stale) or 'none'}")
        return 1 if args.check and stale else 0
    if not args.model:
        p.error("give a MODEL.yaml (or --regenerate)")
    try:
        d, info = insert(args.model, args.where, args.block)
    except (FileNotFoundError, ValueError) as e:
        print(e, file=sys.stderr)
        return 2
    text = render(d, info, Path(args.output).name if args.output else f"{Path(info.source).stem}-attn.yaml")
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"yolo-attn: wrote {args.output}: {info.describe()}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m yolo_attn.insert"))
