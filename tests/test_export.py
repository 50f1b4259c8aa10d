"""Exported attention models run and agree with PyTorch: ONNX (fp32 and fp16), TorchScript and OpenVINO.

Models are the shipped configs at scale n, built untrained (nc=6 to match the tiny val set) and saved with
`YOLO.save()`, which Ultralytics exports like any checkpoint. The attention block is an identity at insertion,
so before saving each block's output projection and q/k/v weights are randomised (sharp, non-uniform attention),
and the detection head's biases set for class scores near 0.5 (where a sigmoid shows every change) and boxes a
few strides wide (inside the image, so NMS has real boxes to compare). Each test checks that attention moves the
outputs far more than its tolerance, so the comparisons do test attention.

Tolerances are maximum absolute differences from the PyTorch fp32 model on the same preprocessed input: boxes
(xywh, pixels) and class scores, before NMS; after NMS, detections are matched one to one. Measured values are
in docs/export.md.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import cv2  # noqa: E402  (an Ultralytics dependency)

from ultralytics import YOLO  # noqa: E402
from ultralytics.nn.modules import Detect  # noqa: E402
from ultralytics.utils.export.engine import best_onnx_opset  # noqa: E402

from yolo_attn import Attention2d, SelfAttentionBlock  # noqa: E402
from yolo_attn.attention2d import kv_pool_factor  # noqa: E402
from yolo_attn.datasets import SHAPES_NAMES, build_shapes  # noqa: E402
from yolo_attn.export import avg_pool_ceil, kv_pool_factor_traced  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
KINDS = {  # attention type -> shipped config
    "standard": "yolov8n-attn-standard.yaml",
    "spatial": "yolov8n-attn-spatial.yaml",
    "efficient": "yolov8n-attn-efficient.yaml",
    "default": "yolov8n-attn.yaml",  # standard, head_dim 64, kv_tokens=400
    "feed-forward": "yolov8n-attn.yaml",  # the default's rows with mlp_ratio 2 (EDITS)
}
EDITS = {"feed-forward": ("True, 400]]", "True, 400, 0.0, 2.0]]")}  # kind -> (text, replacement) in its config
IMGSZ = 64  # export size
SIZES = [(64, 64), (96, 96), (64, 128)]  # (h, w): the export size, then sizes only a dynamic export accepts
CAP_SIZE = (352, 352)  # P3 44x44 = 1936 and P4 22x22 = 484 pixels > 400: the default config pools 3x and 2x there
CONF = 0.55  # predict threshold: a few dozen detections per image from these models
TOL = {  # max |exported - PyTorch|: boxes in pixels at <= 352 px input, scores absolute
    "fp32": {"box": 2e-3, "score": 1e-4},
    "fp16": {"box": 1e-2, "score": 5e-3},  # box tolerance x image side (fp16 has 11 significant bits)
    "bf16": {"box": 2e-2, "score": 2e-2},  # box tolerance x image side (OpenVINO CPU default on bf16 hardware)
}
ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}


# ---------------------------------------------------------------- helpers


def run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run a command in a fresh process; fail with its output on a non-zero exit."""
    p = subprocess.run(cmd, cwd=cwd, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def yolo_cli() -> list[str]:
    """The stock `yolo` console script of this interpreter (its entry point, when the script is not beside it)."""
    script = Path(sys.executable).with_name("yolo")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ultralytics.cfg import entrypoint; entrypoint()"]


def tolerance(precision: str, size: tuple[int, int]) -> dict[str, float]:
    tol = dict(TOL[precision])
    if precision != "fp32":
        tol["box"] *= max(size)
    return tol


def inputs(sizes) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(1, 3, h, w, generator=g) for h, w in sizes]


def assert_close(out: np.ndarray, ref: np.ndarray, tol: dict, what: str) -> tuple[float, float]:
    """Compare raw (B, 4 + nc, anchors) outputs: boxes and scores separately; return their max differences."""
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != PyTorch {ref.shape}"
    box = float(np.abs(out[:, :4] - ref[:, :4]).max())
    score = float(np.abs(out[:, 4:] - ref[:, 4:]).max())
    print(f"{what}: max diff boxes {box:.1e} px, scores {score:.1e}")  # shown with pytest -s: the measured values
    assert box <= tol["box"] and score <= tol["score"], (
        f"{what}: max diff boxes {box:.2e} px, scores {score:.2e}; tolerance {tol['box']:.1e}, {tol['score']:.1e}"
    )
    return box, score


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every attention block a non-trivial, sharp attention (and feed-forward branch), and the head mid-range scores and small boxes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SelfAttentionBlock):
                m.attn.proj.weight.normal_(0, 0.2, generator=g)
                m.attn.qkv.weight.normal_(0, 0.3, generator=g)
                if m.ffn is not None:  # its output conv starts at zero too
                    m.ffn[3].weight.normal_(0, 0.2, generator=g)
            if isinstance(m, Detect):
                for branch in m.cv3:  # class logits near 0: scores near 0.5, spread by the features
                    branch[-1].bias.zero_()
                for branch in m.cv2:  # box-side distributions leaning to the near bins: boxes of a few strides
                    branch[-1].bias.copy_((-0.5 * torch.arange(m.reg_max, dtype=torch.float32)).repeat(4))


def without_attention(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose attention blocks are identities again."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SelfAttentionBlock):
                m.attn.proj.weight.zero_()
    return model


@torch.no_grad()
def forward(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    return model(x)[0].numpy()


def predict(weights, img: np.ndarray):
    """Boxes (xyxy), scores and classes after NMS, through Ultralytics' AutoBackend."""
    r = YOLO(str(weights), task="detect").predict(img, imgsz=list(img.shape[:2]), conf=CONF, device="cpu",
                                                  verbose=False)[0].boxes
    return r.xyxy.numpy(), r.conf.numpy(), r.cls.numpy()


def assert_same_detections(out, ref, tol: dict, what: str, exact: bool = True) -> None:
    """Match every PyTorch detection clear of the threshold to an exported one of its class, within tolerance.

    `exact`: also no extra detections. Lower precisions may flip an NMS decision between near-equal boxes, so
    there 90% must match.
    """
    (ob, os_, oc), (rb, rs, rc) = out, ref
    clear = rs > CONF + tol["score"]  # a detection at the threshold may fall either side of it
    assert clear.sum() >= 5, f"{what}: only {clear.sum()} detections to compare; the test needs a livelier model"
    matched, used = 0, set()
    for b, s, c in zip(rb[clear], rs[clear], rc[clear]):
        d = np.where(oc == c, np.abs(ob - b).max(1), np.inf)
        d[list(used)] = np.inf  # nearest unclaimed: two near-identical PyTorch boxes must not both claim one
        j = int(d.argmin()) if len(d) else -1
        if j >= 0 and d[j] <= tol["box"] and abs(os_[j] - s) <= tol["score"]:
            matched += 1
            used.add(j)
    need = clear.sum() if exact else int(np.ceil(0.9 * clear.sum()))
    assert matched >= need, f"{what}: {matched} of {clear.sum()} PyTorch detections matched ({len(ob)} exported)"
    if exact:
        assert abs(len(ob) - len(rb)) <= (~clear).sum(), f"{what}: {len(ob)} detections vs PyTorch {len(rb)}"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> tuple[Path, list[np.ndarray]]:
    """A tiny shapes val set (data YAML) and its images as BGR arrays."""
    root = build_shapes(tmp_path_factory.mktemp("shapes"), n_train=4, n_val=8, imgsz=IMGSZ)
    yaml = root / "data.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(SHAPES_NAMES))
    yaml.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    images = [cv2.imread(str(p)) for p in sorted((root / "images" / "val").iterdir())[:2]]
    return yaml, images


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """kind -> (saved .pt of the randomised model, its PyTorch fp32 reference), built on first use."""
    root = tmp_path_factory.mktemp("ckpt")
    cache = {}

    def get(kind: str) -> tuple[Path, torch.nn.Module]:
        if kind not in cache:
            name = KINDS[kind]
            cfg = root / kind / name  # same file name: Ultralytics reads the scale from it
            cfg.parent.mkdir()
            text = (CONFIGS / name.replace("yolov8n-", "yolov8-")).read_text().replace("nc: 80", "nc: 6")
            if kind in EDITS:
                assert EDITS[kind][0] in text
                text = text.replace(*EDITS[kind])
            cfg.write_text(text)
            model = YOLO(str(cfg))
            model.model.names = dict(enumerate(SHAPES_NAMES))
            randomise(model.model)
            pt = cfg.with_suffix(".pt")
            model.save(pt)  # fp16 weights, as training checkpoints are: the reference below loads the same ones
            cache[kind] = pt, YOLO(str(pt)).model.float().eval()
        return cache[kind]

    return get


def fresh(pt: Path, tmp_path: Path) -> Path:
    """A private copy of a checkpoint: exports land beside it, so tests never share artifacts."""
    return Path(shutil.copy(pt, tmp_path / pt.name))


def check_attention_matters(ref: torch.nn.Module, x: torch.Tensor, tol: dict) -> None:
    y, y0 = forward(ref, x), forward(without_attention(ref), x)
    assert np.abs(y - y0)[:, 4:].max() > 100 * tol["score"], "attention barely changes the outputs: test is blind"


# ---------------------------------------------------------------- the in-graph key/value cap


def test_in_graph_pool_factor_and_pooling_match_eager():
    for h in (1, 3, 8, 13, 40, 44, 80, 81, 160):
        for w in (1, 5, 17, 44, 80, 200):
            for stride in (1, 2, 3):
                for cap in (1, 4, 16, 100, 400, 1600):
                    assert int(kv_pool_factor_traced(h, w, stride, cap)) == kv_pool_factor(h, w, stride, cap)
    for h, w, f in ((5, 7, 2), (8, 16, 1), (13, 16, 3), (13, 7, 4), (44, 44, 2)):
        x = torch.randn(2, 4, h, w)
        want = torch.nn.functional.avg_pool2d(x, f, f, ceil_mode=True, count_include_pad=False)
        torch.testing.assert_close(avg_pool_ceil(x, torch.tensor(f)), want)


def test_capped_attention_exports_for_every_input_size(tmp_path):
    """Traced at one size, a capped layer pools keys/values as eager PyTorch does at every size (ONNX, TorchScript)."""
    layer = Attention2d(32, head_dim=16, kv_tokens=16).eval()
    with torch.no_grad():
        layer.qkv.weight.normal_(0, 0.3)
        layer.proj.weight.normal_(0, 0.3)
    x0 = torch.randn(1, 32, 8, 8)
    traced = torch.jit.trace(layer, x0)
    f = tmp_path / "layer.onnx"
    torch.onnx.export(layer, (x0,), f, opset_version=18, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}})
    sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
    factors = set()
    for b, h, w in ((1, 8, 8), (2, 13, 17), (1, 32, 32), (1, 5, 3), (1, 1, 40)):
        x = torch.randn(b, 32, h, w)
        with torch.no_grad():
            want = layer(x)
            torch.testing.assert_close(traced(x), want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.from_numpy(sess.run(None, {"x": x.numpy()})[0]), want, atol=1e-5, rtol=1e-5)
        factors.add(kv_pool_factor(h, w, 1, 16))
    assert factors == {1, 2, 3, 5, 8}  # the sizes above need different factors: none frozen at the trace size
    # Tracing leaves the eager path as it was.
    with torch.no_grad():
        torch.testing.assert_close(layer(x0), traced(x0), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- ONNX


def standard_ops(model_onnx) -> None:
    """Every node is a standard ai.onnx operator of the model's opset: no custom op."""
    opset = {o.domain: o.version for o in model_onnx.opset_import}[""]
    for node in model_onnx.graph.node:
        assert node.domain in ("", "ai.onnx"), f"non-standard op {node.domain}::{node.op_type}"
        assert onnx.defs.has(node.op_type, opset, node.domain), f"{node.op_type} is not an ai.onnx op at opset {opset}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_onnx_dynamic_matches_pytorch(kind, checkpoints, shapes, tmp_path):
    pt, ref = checkpoints(kind)
    f = YOLO(str(fresh(pt, tmp_path))).export(format="onnx", imgsz=IMGSZ, dynamic=True, simplify=True, verbose=False)
    model_onnx = onnx.load(f)
    standard_ops(model_onnx)
    assert {o.domain: o.version for o in model_onnx.opset_import}[""] == best_onnx_opset(onnx)  # Ultralytics' pick
    sess = ort.InferenceSession(f, providers=["CPUExecutionProvider"])
    sizes = SIZES + ([CAP_SIZE] if kind == "default" else [])
    xs = inputs(sizes)
    check_attention_matters(ref, xs[0], TOL["fp32"])
    for x, size in zip(xs, sizes):
        assert_close(sess.run(None, {"images": x.numpy()})[0], forward(ref, x), TOL["fp32"], f"ONNX {kind} {size}")
    if kind == "default":  # the cap binds at CAP_SIZE: a factor frozen at the export size would not match
        assert kv_pool_factor(44, 44, 1, 400) == 3 and kv_pool_factor(22, 22, 1, 400) == 2
        assert kv_pool_factor(IMGSZ // 8, IMGSZ // 8, 1, 400) == 1  # not at the export size
        uncapped = copy.deepcopy(ref)
        for m in uncapped.modules():
            if isinstance(m, Attention2d):
                m.kv_tokens = 0
        assert np.abs(forward(uncapped, xs[-1]) - forward(ref, xs[-1])).max() > 10 * TOL["fp32"]["box"]
    # After NMS, through AutoBackend, at the export size and another one.
    _, images = shapes
    for img in (images[0], cv2.resize(images[1], (128, 96))):
        assert_same_detections(predict(f, img), predict(pt, img), TOL["fp32"], f"ONNX {kind} predict {img.shape}")


def test_onnx_fp16_matches_pytorch(checkpoints, shapes, tmp_path):
    pt, ref = checkpoints("default")
    f = YOLO(str(fresh(pt, tmp_path))).export(format="onnx", imgsz=IMGSZ, dynamic=True, simplify=True, half=True,
                                              verbose=False)
    model_onnx = onnx.load(f)
    standard_ops(model_onnx)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model_onnx.graph.initializer)  # really fp16
    sess = ort.InferenceSession(f, providers=["CPUExecutionProvider"])
    for x, size in zip(inputs(SIZES), SIZES):
        assert_close(sess.run(None, {"images": x.numpy()})[0], forward(ref, x), tolerance("fp16", size),
                     f"ONNX fp16 {size}")
    img = shapes[1][0]
    assert_same_detections(predict(f, img), predict(pt, img), tolerance("fp16", img.shape[:2]), "ONNX fp16 predict",
                           exact=False)


def test_onnx_graph_of_attention(checkpoints, tmp_path):
    """Static export: SDPA decomposes to MatMul -> Softmax -> MatMul, and the Nq x Nk score tensor is built."""
    pt, ref = checkpoints("standard")
    f = YOLO(str(fresh(pt, tmp_path))).export(format="onnx", imgsz=IMGSZ, verbose=False)
    model_onnx = onnx.shape_inference.infer_shapes(onnx.load(f))
    standard_ops(model_onnx)
    shapes_of = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model_onnx.graph.value_info}
    scores = [shapes_of.get(n.output[0]) for n in model_onnx.graph.node if n.op_type == "Softmax"]
    blocks = [m for m in ref.modules() if isinstance(m, SelfAttentionBlock)]
    # P3, P4, P5 at 64 px: 8x8, 4x4, 2x2 pixels, every pixel attending to every pixel; heads = width / 32.
    want = [[1, b.attn.num_heads, n, n] for b, n in zip(blocks, (64, 16, 4))]
    assert [s for s in scores if s and len(s) == 4 and s[2] == s[3]] == want
    sess = ort.InferenceSession(f, providers=["CPUExecutionProvider"])
    x = inputs([(IMGSZ, IMGSZ)])[0]
    assert_close(sess.run(None, {"images": x.numpy()})[0], forward(ref, x), TOL["fp32"], "ONNX static")


def test_cli_export_predict_val_onnx(checkpoints, shapes, tmp_path):
    """The stock `yolo` CLI, in fresh processes that never import yolo_attn themselves."""
    pt, ref = checkpoints("default")
    pt = fresh(pt, tmp_path)
    data, images = shapes
    run([*yolo_cli(), "export", f"model={pt}", "format=onnx", f"imgsz={IMGSZ}", "dynamic=True", "simplify=True"],
        cwd=tmp_path)
    f = pt.with_suffix(".onnx")
    sess = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
    for x, size in zip(inputs(SIZES[:2]), SIZES[:2]):
        assert_close(sess.run(None, {"images": x.numpy()})[0], forward(ref, x), TOL["fp32"], f"CLI ONNX {size}")
    img = tmp_path / "img.jpg"
    cv2.imwrite(str(img), images[0])
    out = run([*yolo_cli(), "predict", f"model={f}", f"source={img}", f"imgsz={IMGSZ}", "device=cpu",
               f"project={tmp_path}", "name=pred", "exist_ok=True"], cwd=tmp_path)
    assert "1/1" in out.stdout + out.stderr
    out = run([*yolo_cli(), "val", f"model={f}", f"data={data}", f"imgsz={IMGSZ}", "batch=4", "device=cpu",
               "plots=False", f"project={tmp_path}", "name=val", "exist_ok=True"], cwd=tmp_path)
    assert " all " in out.stdout + out.stderr  # the metrics row over the 8 val images


# ---------------------------------------------------------------- TorchScript


@pytest.mark.parametrize("kind", list(KINDS))
def test_torchscript_matches_pytorch(kind, checkpoints, shapes, tmp_path):
    pt, ref = checkpoints(kind)
    f = YOLO(str(fresh(pt, tmp_path))).export(format="torchscript", imgsz=IMGSZ, dynamic=True, verbose=False)
    ts = torch.jit.load(f)
    sizes = SIZES + ([CAP_SIZE] if kind == "default" else [])
    for x, size in zip(inputs(sizes), sizes):
        with torch.no_grad():
            out = ts(x).numpy()
        assert_close(out, forward(ref, x), TOL["fp32"], f"TorchScript {kind} {size}")
    img = shapes[1][0]
    assert_same_detections(predict(f, img), predict(pt, img), TOL["fp32"], f"TorchScript {kind} predict")
    if kind == "default":  # a static export too, and val through AutoBackend
        model, x = YOLO(str(pt)), inputs([(IMGSZ, IMGSZ)])[0]
        before = forward(model.model.eval(), x)
        f = model.export(format="torchscript", imgsz=IMGSZ, verbose=False)
        np.testing.assert_array_equal(forward(model.model.eval(), x), before)  # exporting leaves the model as it was
        with torch.no_grad():
            assert_close(torch.jit.load(f)(x).numpy(), forward(ref, x), TOL["fp32"], "TorchScript static")
        metrics = YOLO(f, task="detect").val(data=str(shapes[0]), imgsz=IMGSZ, batch=1, device="cpu", plots=False,
                                            project=str(tmp_path), name="val", verbose=False)
        assert 0 <= metrics.box.map50 <= 1


# ---------------------------------------------------------------- OpenVINO


def test_openvino_matches_pytorch(checkpoints, shapes, tmp_path):
    ov = pytest.importorskip("openvino", reason="openvino not installed (pip install openvino)")
    pt, ref = checkpoints("default")
    pt = fresh(pt, tmp_path)
    d = Path(YOLO(str(pt)).export(format="openvino", imgsz=IMGSZ, dynamic=True, verbose=False))
    core = ov.Core()
    xml = next(d.glob("*.xml"))
    # The IR itself, at fp32: OpenVINO's CPU default is bf16 where the CPU has it (AVX512-BF16, AMX).
    compiled = core.compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    sizes = SIZES + [CAP_SIZE]
    for x, size in zip(inputs(sizes), sizes):
        assert_close(compiled(x.numpy())[0], forward(ref, x), TOL["fp32"], f"OpenVINO f32 {size}")
    # Through AutoBackend, which leaves the precision to the CPU plugin.
    default = str(core.get_property("CPU", "INFERENCE_PRECISION_HINT")).lower()
    precision = "fp32" if "f32" in default or "float32" in default else "bf16"
    img = shapes[1][0]
    assert_same_detections(predict(d, img), predict(pt, img), tolerance(precision, img.shape[:2]),
                           f"OpenVINO predict ({default})", exact=precision == "fp32")
    metrics = YOLO(str(d), task="detect").val(data=str(shapes[0]), imgsz=IMGSZ, batch=1, device="cpu", plots=False,
                                             project=str(tmp_path), name="val", verbose=False)
    assert 0 <= metrics.box.map50 <= 1
