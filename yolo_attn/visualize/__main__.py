"""``python -m yolo_attn.visualize``: see `yolo_attn.visualize.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
