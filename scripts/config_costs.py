"""Measure each shipped config's cost with Ultralytics' own summary and write it into the config's header.

Usage: python scripts/config_costs.py [--check]
  --check: only compare, exit 1 if a header is stale (for CI-style checks).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yolo_attn  # noqa: F401  registers the layers
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import get_flops, get_num_params

CONFIG_DIR = Path(yolo_attn.__file__).parent / "configs"
COST_LINE = re.compile(r"^# (COST|Cost at scale n, 640 px:.*)$", re.M)


def cost(cfg: str) -> tuple[int, float]:
    """Return (params, GFLOPs at 640 px) of a model config at its scale."""
    model = DetectionModel(cfg, verbose=False)
    return get_num_params(model), get_flops(model, 640)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__).parse_known_args(argv)[0]
    check = "--check" in (argv or sys.argv[1:])
    base_params, base_flops = cost("yolov8n.yaml")
    stale = 0
    for path in sorted(CONFIG_DIR.glob("yolov8-attn*.yaml")):
        params, flops = cost(str(path.with_name(path.name.replace("yolov8-", "yolov8n-"))))
        line = (
            f"# Cost at scale n, 640 px: {params:,} params, {flops:.1f} GFLOPs "
            f"(yolov8n: {base_params:,}, {base_flops:.1f}; +{params - base_params:,} params, "
            f"+{flops - base_flops:.1f} GFLOPs), measured by scripts/config_costs.py"
        )
        text = path.read_text()
        new = COST_LINE.sub(line, text, count=1)
        print(f"{path.name:32s} {params:>10,} params {flops:6.1f} GFLOPs")
        if new != text:
            stale += 1
            if not check:
                path.write_text(new)
    del args
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
