"""`python -m yolo_attn` (or `yolo-attn`): the report on this installation (`info`, the default: `report.py`) or the
insertion tool (`add`: `insert.py`).

Exit status: 0, or 1 when the layers could not be registered with Ultralytics (report) or the insertion failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Dispatch: `add ...` to the insertion tool, anything else to the report."""
    prog = "yolo-attn" if Path(sys.argv[0]).stem == "yolo-attn" else "python -m yolo_attn"
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["add"]:  # the insertion tool: yolo_attn.insert
        from . import insert

        return insert.main(argv[1:], prog=f"{prog} add")
    from . import report

    p = argparse.ArgumentParser(prog=prog, description=report.__doc__.split("\n\n")[0])
    p.add_argument("command", nargs="?", default="info", choices=["info", "add"],
                   help="info: print the report (default); add: insert attention into a model YAML (add --help)")
    p.add_argument("--no-costs", action="store_true", help="skip building each shipped config for params/GFLOPs")
    args = p.parse_args(argv)
    return report.report(costs=not args.no_costs)


if __name__ == "__main__":
    sys.exit(main())
