"""Attention visualisation: maps sum to one, point where constructed weights say, follow the letterbox, write PNGs.

The model is a randomly initialised yolov8n-attn at 64-96 px (no training); where a test needs to know where
attention goes, it sets one block's weights so that the answer is known analytically.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from yolo_attn import Attention2d, SelfAttentionBlock
from yolo_attn.attention import attention_weights
from yolo_attn.datasets import build_shapes
from yolo_attn.visualize import (
    Letterbox,
    collect_attention,
    format_summary,
    main,
    query_attention,
    summarize_attention,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# ---------------------------------------------------------------- the layer: constructed weights, no Ultralytics


def spike_layer(kv_stride: int = 1) -> Attention2d:
    """2 heads, no position: every query's q is e0 per head, every key's k is (input channel 0) e0 per head.

    Attention logits are then (channel 0 of the key) / sqrt(d): a large value at one pixel takes all attention.
    """
    layer = Attention2d(64, head_dim=32, kv_stride=kv_stride, pos=False).eval()
    with torch.no_grad():
        layer.qkv.weight.zero_()
        layer.qkv.bias.zero_()
        for h in range(layer.num_heads):
            layer.qkv.bias[h * 32] = 1.0  # q
            layer.qkv.weight[64 + h * 32, 0] = 1.0  # k
    return layer


@pytest.mark.parametrize("kv_stride", [1, 2, 3])
def test_every_query_attends_to_the_constructed_key(kv_stride):
    layer = spike_layer(kv_stride)
    H, W, target = 11, 13, (7, 4)
    x = torch.zeros(1, 64, H, W)
    x[0, 0, target[0], target[1]] = 1e4
    cells = torch.tensor([[0, 0], [10, 12], [7, 4], [3, 9]])
    weights, distance, entropy = query_attention(layer, x, cells, scale_yx=(8.0, 4.0))
    Hk, Wk = math.ceil(H / kv_stride), math.ceil(W / kv_stride)
    assert weights.shape == (2, len(cells), Hk, Wk)
    torch.testing.assert_close(weights.sum((-2, -1)), torch.ones(2, len(cells)))
    key = (target[0] // kv_stride, target[1] // kv_stride)
    flat = weights.flatten(2).argmax(-1)
    assert (flat == key[0] * Wk + key[1]).all()
    # All weight on one key cell: entropy 0, distance = query pixel centre to that (possibly partial) cell's centre.
    assert entropy.abs().max() < 1e-4
    ky = (key[0] * kv_stride + min(key[0] * kv_stride + kv_stride, H)) / 2
    kx = (key[1] * kv_stride + min(key[1] * kv_stride + kv_stride, W)) / 2
    expected = [math.hypot((ky - r - 0.5) * 8, (kx - c - 0.5) * 4) for r, c in cells.tolist()]
    torch.testing.assert_close(distance, torch.tensor([expected] * 2), rtol=1e-4, atol=1e-3)


def test_uniform_attention_has_maximal_entropy():
    layer = spike_layer()
    with torch.no_grad():
        layer.qkv.bias.zero_()  # q = 0: every key gets the same logit
    x = torch.randn(1, 64, 5, 7)
    weights, distance, entropy = query_attention(layer, x, torch.tensor([[2, 3], [0, 6]]))
    torch.testing.assert_close(weights, torch.full_like(weights, 1 / 35))
    torch.testing.assert_close(entropy, torch.full_like(entropy, math.log(35)))
    ys, xs = torch.meshgrid(torch.arange(5) + 0.5, torch.arange(7) + 0.5, indexing="ij")
    mean_dist = [((ys - r - 0.5) ** 2 + (xs - c - 0.5) ** 2).sqrt().mean() for r, c in ((2, 3), (0, 6))]
    torch.testing.assert_close(distance, torch.tensor([mean_dist] * 2))


def test_query_rows_match_the_full_attention_matrix():
    """The Q rows asked for are exactly those rows of softmax(q k^T / sqrt d), for a real layer with position."""
    layer = Attention2d(64, head_dim=32, kv_stride=2).eval()
    x = torch.randn(1, 64, 6, 9)
    cells = torch.tensor([[0, 0], [5, 8], [2, 7]])
    weights, _, _ = query_attention(layer, x, cells)
    q, k, _ = layer.qkv_heads(x)
    full = attention_weights(q, k)[0]  # (h, 54, Nk): fine to build here, the map is tiny
    rows = full[:, cells[:, 0] * 9 + cells[:, 1]]
    torch.testing.assert_close(weights.flatten(2), rows)


# ---------------------------------------------------------------- through Ultralytics' predictor


@pytest.fixture(scope="module")
def model():
    """A random yolov8n-attn whose P3 block (layer 16) attends from every pixel to its own feature pixel.

    The block's norm outputs zeros, so the attention sees only its sine-cosine position table; q and k are the
    same 32 position channels (x and y at the 8 highest frequencies) scaled up, so the logits are
    sum_w cos(w dx) + cos(w dy), largest at dx = dy = 0.
    """
    from ultralytics import YOLO

    yolo = YOLO(str(CONFIGS / "yolov8n-attn.yaml"))
    block = yolo.model.model[16]
    assert isinstance(block, SelfAttentionBlock) and block.c1 == 64 and block.attn.num_heads == 1  # head_dim 64
    sel = [*range(0, 8), *range(16, 24), *range(32, 40), *range(48, 56)]  # sin x, cos x, sin y, cos y
    with torch.no_grad():
        block.norm.weight.zero_()
        block.norm.bias.zero_()
        w = block.attn.qkv.weight
        w.zero_()
        assert block.attn.qkv.bias is None  # the block's projections have no biases
        d = block.attn.head_dim
        for h in range(block.attn.num_heads):
            for j, c in enumerate(sel):
                w[h * d + j, c] = 10.0  # q
                w[64 + h * d + j, c] = 10.0  # k
    return yolo


@pytest.fixture(scope="module")
def wide_image(tmp_path_factory) -> Path:
    """40 x 96 px: at imgsz 96 the letterbox pads 12 rows above and below (network input 64 x 96)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("wide") / "wide.png"
    cv2.imwrite(str(path), rng.integers(0, 255, (40, 96, 3), dtype=np.uint8))
    return path


def test_letterbox_matches_ultralytics_preprocessing(model, wide_image):
    from ultralytics.data.augment import LetterBox

    (rec,) = collect_attention(model, wide_image, layers=[16], queries=[(0, 0)], imgsz=96)
    lb = rec.letterbox
    assert lb.input_hw == (64, 96) and (lb.gain_y, lb.gain_x, lb.pad_y, lb.pad_x) == (1.0, 1.0, 12.0, 0.0)
    # Independently: put a marker in a 50 x 120 image, letterbox it as the predictor would, find the marker.
    img = np.zeros((50, 120, 3), np.uint8)
    img[30:34, 70:74] = 255
    out = LetterBox(96, auto=True, stride=32)(image=img)
    lb = Letterbox.from_shapes(out.shape[:2], img.shape[:2])
    ys, xs = np.nonzero(out[..., 0] > 127)
    centre = lb.to_input(np.array([32.0, 72.0]))
    assert abs(ys.mean() + 0.5 - centre[0]) < 0.5 and abs(xs.mean() + 0.5 - centre[1]) < 0.5


def test_heat_peaks_on_the_query_through_the_letterbox(model, wide_image):
    queries = [(5, 10), (0, 0), (39, 95), (20, 50)]
    (rec,) = collect_attention(model, wide_image, layers=16, queries=queries, imgsz=96)
    la = rec.layer(16)
    assert la.feature_hw == (8, 12) and la.key_hw == (8, 12) and la.stride_yx == (8.0, 8.0)
    np.testing.assert_allclose(la.weights.sum((-2, -1)), 1.0, rtol=1e-5)
    for q, (r, c) in enumerate(queries):
        heat = rec.heatmap(16, q)
        assert heat.shape == (40, 96)
        assert heat[r, c] == heat.max(), f"query {q} ({r}, {c}) is not under the peak"
        for head in range(la.heads):  # every head's argmax is the query's own key cell
            cell = np.unravel_index(la.weights[head, q].argmax(), la.key_hw)
            assert tuple(cell) == tuple(la.query_cells[q])
    # Query (5, 10): input pixel (17, 10), feature/key cell (2, 1) = input rows 16-23, cols 8-15 = original rows
    # 4-11 (12 rows of padding above), cols 8-15.
    assert tuple(la.query_cells[0]) == (2, 1)
    rows, cols = np.nonzero(rec.heatmap(16, 0) == rec.heatmap(16, 0).max())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 11, 8, 15)
    assert np.all(la.entropy < 0.1)  # peaked
    # Query (39, 95) sits in the last real row: input row 51, key row 6 (row 7 is all padding, never drawn).
    assert tuple(la.query_cells[2]) == (6, 11)


def test_default_queries_are_box_centres_and_no_full_map_is_built(model, wide_image, monkeypatch):
    import yolo_attn.attention2d as a2d

    built = []

    def recording(q, k):
        built.append((q.shape[-2], k.shape[-2]))
        return attention_weights(q, k)

    monkeypatch.setattr(a2d, "attention_weights", recording)
    (rec,) = collect_attention(model, wide_image, imgsz=96, conf=0.0, max_queries=3)
    assert [la.index for la in rec.layers] == [16, 20, 24]  # every SelfAttentionBlock
    assert len(rec.boxes) >= 3 and len(rec.queries) == 3
    top = rec.boxes[:3]
    np.testing.assert_allclose(rec.queries, np.stack([(top[:, 1] + top[:, 3]) / 2, (top[:, 0] + top[:, 2]) / 2], 1))
    assert rec.query_boxes == [0, 1, 2]
    assert built == [(3, 96), (3, 24), (3, 6)]  # 3 query rows per layer, never the 96 x 96 map of P3
    for la in rec.layers:
        np.testing.assert_allclose(la.weights.sum((-2, -1)), 1.0, rtol=1e-5)
        assert np.all(la.norm_entropy <= 1 + 1e-6) and np.all(la.distance > 0)


def test_list_source_and_summary(model, wide_image):
    """A list source is predicted as one batch: each image still gets its own maps. The summary averages them."""
    batch = list(collect_attention(model, [wide_image, wide_image], layers=[16, 24], queries=[(5, 10)], imgsz=96))
    (single,) = collect_attention(model, wide_image, layers=[16, 24], queries=[(5, 10)], imgsz=96)
    assert len(batch) == 2
    for rec in batch:
        for la, ref in zip(rec.layers, single.layers):
            np.testing.assert_allclose(la.weights, ref.weights, atol=1e-4)
    (row16, row24) = summarize_attention(model, [wide_image, wide_image], layers=[16, 24], queries=[(5, 10)], imgsz=96)
    assert (row16["layer"], row16["map"], row16["keys"], row16["queries"], row16["heads"]) == (16, "8x12", "8x12", 2, 1)
    assert row16["distance_px"] < 0.5 and row16["norm_entropy"] < 0.05  # its own pixel: distance 0, one key
    assert row24["keys"] == "2x3" and len(row24["head_entropy"]) == 4  # 256 channels / head_dim 64
    np.testing.assert_allclose(row24["entropy"], single.layer(24).entropy.mean(), rtol=1e-4)


def test_bad_layer_and_query_are_clear_errors(model, wide_image):
    with pytest.raises(ValueError, match=r"layer 3 is not an attention layer \(Conv\); attention layers: \[16, 20, 24\]"):
        next(collect_attention(model, wide_image, layers=[3]))
    with pytest.raises(ValueError, match=r"outside image .* of 40x96"):
        next(collect_attention(model, wide_image, queries=[(40, 5)], imgsz=96))


def test_cli_writes_pngs_and_prints_summary(model, tmp_path, capsys):
    weights = tmp_path / "attn.pt"
    model.save(weights)
    images = build_shapes(tmp_path / "shapes", n_train=2, n_val=1, imgsz=64) / "images" / "train"
    out = tmp_path / "maps"
    assert main([str(weights), str(images), "--out", str(out), "--imgsz", "64", "--layer", "16", "24",
                 "--query", "10,20", "--query", "50,3", "--heads"]) == 0
    printed = capsys.readouterr().out
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["000000_layer16.png", "000000_layer24.png", "000001_layer16.png",
                                      "000001_layer24.png"]
    for p in pngs:
        im = cv2.imread(str(p))
        assert im is not None and im.shape[0] > 200 and im.shape[1] > 400  # 2 query columns
    assert "mean dist (px)" in printed and "entropy (nats)" in printed
    table = [line.split() for line in printed.splitlines() if line.strip().startswith(("16 ", "24 "))]
    assert [row[0] for row in table] == ["16", "24"]
    assert [row[5] for row in table] == ["4", "4"]  # 2 images x 2 queries per layer
    assert float(table[0][-1]) < 0.1  # layer 16 was made to look at one key: normalised entropy near 0
    # Layer 24 at 64 px: a 2 x 2 key grid, so entropy is at most log 4.
    assert 0.0 <= float(table[1][-2]) <= math.log(4) + 1e-6

    with pytest.raises(SystemExit):
        main([str(weights), str(images), "--out", str(out), "--layer", "3"])
    assert "not an attention layer" in capsys.readouterr().err


def test_format_summary_aligns_columns():
    rows = [dict(layer=16, module="SelfAttentionBlock(standard)", heads=2, map="8x8", keys="8x8", queries=4,
                 distance_px=12.345, entropy=1.5, norm_entropy=0.25)]
    lines = format_summary(rows).splitlines()
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
    assert "12.3" in lines[2] and "0.250" in lines[2]


def test_importing_yolo_attn_does_not_import_visualize_or_ultralytics():
    code = (
        "import sys, yolo_attn; first = 'yolo_attn.visualize' in sys.modules; import yolo_attn.visualize; "
        "print(first, 'ultralytics' in sys.modules, 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_visualize_reaches_the_layers_only_through_public_names_or_the_layers_wing():
    # An application: it may use the package's public names and the plain-PyTorch layers, never the Ultralytics wing.
    import ast
    import importlib
    from pathlib import Path

    import yolo_attn.visualize as vis

    folder = Path(vis.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "__main__.py", "cli.py", "collect.py", "queries.py"}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module.startswith("yolo_attn"):
                    assert node.module == "yolo_attn" or node.module.startswith("yolo_attn.layers"), (
                        f"{f.name} imports {node.module}"
                    )
                    module = importlib.import_module(node.module)
                    assert all(hasattr(module, a.name) for a in node.names), f.name
                assert node.level in (0, 1), f"{f.name} reaches outside yolo_attn.visualize"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("yolo_attn.") for a in node.names), f.name
