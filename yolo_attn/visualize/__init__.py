"""Show what the attention looks at: heat maps of chosen queries' attention over the image, and a per-layer summary.

For a trained attention detector (an Ultralytics ``.pt`` or a ``YOLO`` object) and an image or a folder, this
runs Ultralytics' own predictor (its letterbox, its NMS, its boxes), captures the input of each chosen attention
layer with a forward pre-hook, and then asks the layer for the attention of the chosen query pixels only
(`Attention2d.attention_map`): queries x keys weights, never the full N x N map. Queries default to the centre of
each detected box (the most confident `max_queries`), or the image centre when nothing is detected.

Every key cell's weight is painted over the original-image pixels it covers, undoing the letterbox with the same
transform the predictor applies to its boxes (`ultralytics.utils.ops.scale_boxes`), so heat and boxes line up.

Command line::

    python -m yolo_attn.visualize MODEL SOURCE --out DIR [--layer I ...] [--query ROW,COL ...] [--heads]
                                  [--imgsz N] [--conf C] [--max-queries K] [--device cpu]

Python::

    from yolo_attn.visualize import visualize_attention, summarize_attention
    paths = visualize_attention("best.pt", "images/", "attn_out")         # PNGs + printed table
    rows = summarize_attention("best.pt", "images/", queries=[(120, 200)])  # numbers only

Ultralytics is imported only when one of these runs; importing this module does not import it.
"""

from .cli import main
from .collect import attention_layers, collect_attention
from .queries import ImageAttention, LayerAttention, Letterbox, query_attention
from .render import visualize_attention
from .summary import format_summary, summarize_attention

__all__ = [
    "ImageAttention",
    "LayerAttention",
    "Letterbox",
    "attention_layers",
    "collect_attention",
    "format_summary",
    "main",
    "query_attention",
    "summarize_attention",
    "visualize_attention",
]
