"""Warm start from a plain YOLOv8 checkpoint: layer-order mapping around the inserted yolo_attn rows.

Unit tests of `yolo_attn.transfer` on hand-made layer lists, then the Ultralytics hook (`BaseModel.load`) on real
models: full transfer for every config and scale, equal predictions before training, fallbacks on mismatches, and
the stock `yolo train ... pretrained=` CLI. Checkpoints are built here (no downloads).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from yolo_attn import SelfAttentionBlock
from yolo_attn.datasets import SHAPES_NAMES, build_shapes
from yolo_attn.transfer import Mismatch, describe, is_inserted, map_layers, reorder, report

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
NAMES = dict(enumerate(SHAPES_NAMES))


# ---------------------------------------------------------------- pure mapping (no Ultralytics)


def row(module: nn.Module, f=-1) -> nn.Module:
    module.f = f  # what Ultralytics' parse_model writes onto each row
    return module


class Cat(nn.Module):  # a parameter-free multi-input row, like Ultralytics' Concat
    pass


def plain(width=8, c_in=3):
    return [
        row(nn.Conv2d(c_in, width, 3)),  # 0
        row(nn.Conv2d(width, width, 3)),  # 1
        row(Cat(), [-1, 0]),  # 2
        row(nn.Conv2d(2 * width, width, 1)),  # 3
        row(nn.Conv2d(width, 4, 1), [1]),  # 4 head reading 1
    ]


def with_attention(width=8, c_in=3):
    return [
        row(nn.Conv2d(c_in, width, 3)),  # 0
        row(nn.Conv2d(width, width, 3)),  # 1
        row(SelfAttentionBlock(width, head_dim=4)),  # 2 inserted
        row(Cat(), [-1, 0]),  # 3 (reads 2 -> resolves to 1)
        row(nn.Conv2d(2 * width, width, 1)),  # 4
        row(SelfAttentionBlock(width, head_dim=4)),  # 5 inserted
        row(nn.Conv2d(width, 4, 1), [2]),  # 6 head reads the attention after 1
    ]


def test_is_inserted_only_for_plugin_layers():
    assert is_inserted(SelfAttentionBlock(8, head_dim=4))
    assert not is_inserted(nn.Conv2d(1, 1, 1)) and not is_inserted(Cat())


def test_map_by_order_around_inserted_rows():
    src, dst = plain(), with_attention()
    plan = map_layers(describe(src), describe(dst))
    assert plan.mapping == {0: 0, 1: 1, 2: 3, 3: 4, 4: 6}
    assert plan.fresh == (2, 5) and not plan.identity
    assert plan.summary() == "0-1->0-1, 2-3->3-4, 4->6"
    sd = nn.Sequential(*src).state_dict()
    remapped = plan.remap_state_dict({f"model.{k}": v for k, v in sd.items()})
    assert set(remapped) == {"model.0.weight", "model.0.bias", "model.1.weight", "model.1.bias", "model.4.weight",
                             "model.4.bias", "model.6.weight", "model.6.bias"}
    assert remapped["model.6.weight"] is sd["4.weight"]
    moved = reorder(src, plan)
    assert len(moved) == len(dst) and moved[6] is src[4] and isinstance(moved[2], nn.Identity)
    complete, line = report(plan, src, dst, {f"model.{k}": v for k, v in sd.items()},
                            {f"model.{k}": v for k, v in nn.Sequential(*dst).state_dict().items()})
    assert complete
    assert "transferred 8/8 source tensors" in line
    assert "left at initialisation: 2 SelfAttentionBlock, 5 SelfAttentionBlock (only the inserted" in line


def test_same_layers_are_identity():
    plan = map_layers(describe(with_attention()), describe(with_attention()))
    assert plan.identity and plan.mapping == {i: i for i in range(7)}


def put(i, module, f=-1):
    return lambda layers: layers.__setitem__(i, row(module, f))


@pytest.mark.parametrize(
    "edit, match",
    [
        (put(4, nn.Conv2d(8, 4, 1), [3]),
         r"source layer 4 Conv2d -> target layer 6 Conv2d: reads layers \[4\] \(remapped\) in the source, \[1\] here"),
        (put(3, nn.Conv2d(16, 8, 3)), r"layer 3 .* weight is \(8, 16, 3, 3\) in the source, \(8, 16, 1, 1\) here"),
        (put(3, nn.Conv1d(16, 8, 1)), r"different layer types"),
        (lambda s: s.insert(3, row(nn.Identity())), r"the source has 6 layers besides yolo_attn rows, the target 5"),
        (put(2, Cat(), [-1, 0, 1]), r"reads layers \[1, 0, 1\] .* \[1, 0\] here"),
    ],
    ids=["from", "shape", "type", "count", "concat-inputs"],
)
def test_mismatches_are_refused_with_the_reason(edit, match):
    src = plain()
    edit(src)
    with pytest.raises(Mismatch, match=match):
        map_layers(describe(src), describe(with_attention()))


def test_other_scale_is_refused():
    with pytest.raises(Mismatch, match=r"source layer 0 Conv2d -> target layer 0 Conv2d: weight is \(16, 3, 3, 3\)"):
        map_layers(describe(plain(width=16)), describe(with_attention(width=8)))


def test_free_keys_may_differ_in_shape_only():
    src, dst = plain(c_in=3), with_attention(c_in=1)
    with pytest.raises(Mismatch, match="weight is"):
        map_layers(describe(src), describe(dst))
    assert map_layers(describe(src), describe(dst), free={0: ("weight",)}).mapping[0] == 0
    src[0] = row(nn.Conv2d(3, 8, 3, bias=False))  # a missing key is never free
    with pytest.raises(Mismatch, match="bias is missing in the source"):
        map_layers(describe(src), describe(dst), free={0: ("weight",)})


def test_inserted_row_must_read_one_row():
    dst = with_attention()
    dst[2].f = [-1, 0]
    with pytest.raises(Mismatch, match="yolo_attn row 2 SelfAttentionBlock does not read exactly one earlier row"):
        map_layers(describe(plain()), describe(dst))


def test_rows_without_from_are_refused():
    src = plain()
    del src[1].f
    with pytest.raises(Mismatch, match="layer 1 Conv2d has no readable `from`"):
        map_layers(describe(src), describe(with_attention()))


def test_attention_rows_of_the_source_follow_their_anchor():
    """An attention source into another placement: a source row lands where the target has one after the same layer."""
    dst = [
        row(nn.Conv2d(3, 8, 3)),  # 0
        row(nn.Conv2d(8, 8, 3)),  # 1 (no attention after it here)
        row(Cat(), [-1, 0]),  # 2
        row(nn.Conv2d(16, 8, 1)),  # 3
        row(SelfAttentionBlock(8, head_dim=4)),  # 4 <- source row 5
        row(nn.Conv2d(8, 4, 1), [1]),  # 5
    ]
    src = with_attention()
    plan = map_layers(describe(src), describe(dst))
    assert plan.mapping == {0: 0, 1: 1, 3: 2, 4: 3, 5: 4, 6: 5} and plan.fresh == ()
    sd = {f"model.{k}": v for k, v in nn.Sequential(*src).state_dict().items()}
    complete, line = report(plan, src, dst, sd, {f"model.{k}": v for k, v in nn.Sequential(*dst).state_dict().items()})
    assert not complete and "(source rows not in this model: 2 SelfAttentionBlock)" in line
    assert line.endswith("left at initialisation: nothing")


# ---------------------------------------------------------------- the Ultralytics hook on real models

from ultralytics import YOLO  # noqa: E402
from ultralytics.nn.tasks import BaseModel, DetectionModel  # noqa: E402
from ultralytics.utils import LOGGER  # noqa: E402


@pytest.fixture
def log():
    """Lines Ultralytics' LOGGER emits during the test."""
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    LOGGER.addHandler(handler)
    yield lines
    LOGGER.removeHandler(handler)


def perturb_(model: nn.Module, g: torch.Generator) -> None:
    """Move every float tensor of `model` (BN statistics included) off its initialisation, in place."""
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if t.is_floating_point():
                noise = torch.rand(t.shape, generator=g) if "running_var" in k else torch.randn(t.shape, generator=g)
                t.copy_(t + 0.5 + noise if "running_var" in k else t + 0.1 * noise)


def perturbed(cfg="yolov8n.yaml", nc=6, seed=1) -> DetectionModel:
    """A plain model with every float tensor (BN statistics included) moved off its initialisation."""
    model = DetectionModel(cfg, nc=nc, verbose=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        perturb_(model, g)
        for branch in model.model[-1].cv3:  # class biases off their very negative prior: scores carry signal
            branch[-1].bias.copy_(torch.randn(branch[-1].bias.shape, generator=g))
    model.names = dict(NAMES) if nc == len(NAMES) else {i: f"class{i}" for i in range(nc)}
    return model


def save(model: DetectionModel, path: Path) -> Path:
    """Write `model` in Ultralytics' checkpoint format: the dict `Model.save` writes (FP16 module, metadata)."""
    from ultralytics import __version__

    ckpt = {"ema": None, "model": deepcopy(model).half(), "date": "2025-01-01T00:00:00", "version": __version__,
            "license": "AGPL-3.0 License (https://ultralytics.com/license)", "docs": "https://docs.ultralytics.com"}
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def source6(tmp_path_factory) -> Path:
    return save(perturbed(nc=6), tmp_path_factory.mktemp("src") / "plain6.pt")


def outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every output tensor in eval mode: decoded predictions, then the head's raw outputs (boxes, scores and feature
    maps in 8.4; one map per level in 8.3)."""
    model.eval()
    with torch.no_grad():
        return flat(model(x))


def image() -> torch.Tensor:
    """A 64 px image with content (shapes dataset style), as the model's input."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 64, 64, generator=g)
    x[..., 16:40, 20:48] = 0.9
    return x


@pytest.fixture(scope="module")
def plain_n() -> DetectionModel:
    return DetectionModel("yolov8n.yaml", verbose=False)


@pytest.mark.parametrize("cfg", sorted(p.name for p in CONFIGS.glob("yolov8-attn*.yaml")))
def test_every_config_maps_fully(cfg, plain_n):
    src = plain_n
    dst = DetectionModel(str(CONFIGS / cfg.replace("yolov8-", "yolov8n-")), verbose=False)
    plan = map_layers(describe(src.model), describe(dst.model))
    assert plan.fresh == tuple(i for i, m in enumerate(dst.model) if isinstance(m, SelfAttentionBlock))
    assert len(plan.mapping) == len(src.model) == len(dst.model) - len(plan.fresh)
    assert plan.mapping[len(src.model) - 1] == len(dst.model) - 1  # Detect -> Detect


def rows(cfg: str) -> nn.Sequential:
    """The layer list a config builds (Ultralytics' parse_model: the real rows, without the model's stride pass)."""
    from ultralytics.nn.tasks import parse_model, yaml_model_load

    return parse_model(deepcopy(yaml_model_load(cfg)), ch=3, verbose=False)[0]


@pytest.mark.parametrize("scale", "nsmlx")
def test_every_scale_maps_fully_and_not_across_scales(scale, plain_n):
    dst = rows(str(CONFIGS / f"yolov8{scale}-attn.yaml"))
    plan = map_layers(describe(rows(f"yolov8{scale}.yaml")), describe(dst))
    assert plan.fresh == (16, 20, 24) and plan.summary() == "0-15->0-15, 16-18->17-19, 19-21->21-23, 22->25"
    if scale != "n":
        with pytest.raises(Mismatch, match="source layer 0 Conv -> target layer 0 Conv: conv.weight is"):
            map_layers(describe(plain_n.model), describe(dst))


def test_from_graph_is_checked_on_real_models(plain_n):
    """A source with a Concat's inputs swapped has every shape right and the wrong graph: refused."""
    from ultralytics.nn.tasks import yaml_model_load

    cfg = deepcopy(yaml_model_load("yolov8n.yaml"))
    cfg["head"][1][0] = [6, -1]  # cat backbone P4 first
    src = DetectionModel(cfg, verbose=False)
    dst = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), verbose=False)
    with pytest.raises(Mismatch, match=r"source layer 11 Concat -> target layer 11 Concat: reads layers \[6, 10\]"):
        map_layers(describe(src.model), describe(dst.model))


def test_warm_start_predicts_like_the_source(source6, log):
    """Identity at insertion + full transfer: the attention model predicts exactly what the checkpoint does."""
    plain = YOLO(str(source6))
    attn = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), nc=6, verbose=False)
    attn.load(torch.load(source6, weights_only=False))  # a checkpoint dict, as BaseModel.load accepts
    line = next(m for m in log if m.startswith("yolo-attn:"))
    n = len(plain.model.state_dict())  # the stock model's tensors (355 in 8.4, 391 in 8.3)
    assert f"transferred {n}/{n} source tensors" in line
    assert line.endswith("left at initialisation: 16 SelfAttentionBlock, 20 SelfAttentionBlock, "
                         "24 SelfAttentionBlock (only the inserted yolo_attn rows)")
    assert attn.names == NAMES  # placeholder names taken from the source, as on any full transfer
    x = image()
    for a, b in zip(outputs(plain.model, x), outputs(attn, x)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert outputs(plain.model, x)[0][:, 4:].std() > 0.05  # a non-trivial model: class scores vary


def test_python_api_load_by_path(tmp_path, log):
    source80 = save(perturbed(nc=80, seed=2), tmp_path / "plain80.pt")
    model = YOLO(str(CONFIGS / "yolov8n-attn.yaml")).load(str(source80))
    plain = YOLO(str(source80)).model
    n, n_head = len(plain.state_dict()), len(plain.model[-1].state_dict())
    assert any(f"transferred {n}/{n} source tensors" in m for m in log)
    x = image()
    for a, b in zip(outputs(plain, x), outputs(model.model, x)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # COCO-like checkpoint into 6 classes: the wider class branches are Ultralytics' to re-fit (8.4 rebuilds them at
    # the source width: all but the 6 class-logit tensors transfer; 8.3 leaves those of another shape at
    # initialisation), we only move them: the attention model gets exactly what the stock one gets.
    log.clear()
    stock = DetectionModel("yolov8n.yaml", nc=6, verbose=False)
    stock.load(plain)
    (k,) = [int(m.split()[1].split("/")[0]) for m in log if m.startswith("Transferred ")]
    log.clear()
    six = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), nc=6, verbose=False)
    six.load(plain)
    assert six.model[-1].cv3[0][-1].weight.shape == stock.model[-1].cv3[0][-1].weight.shape
    assert any(f"transferred {k}/{n} source tensors" in m and f"25 Detect ({n - k}/{n_head} tensors, nc 80 -> 6)"
               in m for m in log)


def test_other_nc_maps_all_but_the_class_outputs(source6, log):
    """Another class count (COCO checkpoint -> own data): everything but the class-logit convs transfers."""
    src = YOLO(str(source6)).model
    attn = DetectionModel(str(CONFIGS / "yolov8n-attn.yaml"), nc=3, verbose=False)
    attn.load(src)
    line = next(m for m in log if m.startswith("yolo-attn:"))
    n, n_head = len(src.state_dict()), len(src.model[-1].state_dict())
    assert f"transferred {n - 6}/{n} source tensors" in line
    assert f"25 Detect (6/{n_head} tensors, nc 6 -> 3)" in line
    s, d = src.state_dict(), attn.state_dict()
    assert torch.equal(d["model.17.conv.weight"], s["model.16.conv.weight"])  # neck Conv after the P3 attention
    head = [k.removeprefix("model.25.") for k in d if k.startswith("model.25.")]
    logits = [k for k in head if k.startswith(("cv3.0.2.", "cv3.1.2.", "cv3.2.2."))]  # each level's class-logit conv
    assert len(logits) == 6 and d["model.25.cv3.0.2.weight"].shape[0] == 3
    for k in set(head) - set(logits):  # box branch, class branch body, DFL: moved from the source's row 22
        assert torch.equal(d[f"model.25.{k}"], s[f"model.22.{k}"]), k


def test_other_scale_falls_back_to_ultralytics(source6, log):
    src = YOLO(str(source6)).model
    attn = DetectionModel(str(CONFIGS / "yolov8s-attn.yaml"), nc=6, verbose=False)
    stock = deepcopy(attn)
    attn.load(src)
    warning = next(m for m in log if "yolo-attn:" in m)
    assert "are not this model minus its yolo_attn rows (source layer 0 Conv -> target layer 0 Conv: conv.weight " \
           "is (16, 3, 3, 3) in the source, (32, 3, 3, 3) here); falling back" in warning
    BaseModel.load.__wrapped__(stock, src, verbose=False)  # Ultralytics' own load, unwrapped
    for (k, a), b in zip(attn.state_dict().items(), stock.state_dict().values()):
        assert torch.equal(a, b), k


def test_plain_targets_are_untouched(source6, log):
    plain = DetectionModel("yolov8n.yaml", nc=6, verbose=False)
    plain.load(YOLO(str(source6)).model)
    assert not any("yolo-attn" in m for m in log)
    n = len(plain.state_dict())
    assert f"Transferred {n}/{n} items from pretrained weights" in log


def test_stock_cli_pretrained(source6, tmp_path):
    """`yolo train model=<attn yaml> pretrained=<plain .pt>` with no import by the user: full transfer logged."""
    root = build_shapes(tmp_path / "shapes", n_train=8, n_val=4, imgsz=64)
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {list(SHAPES_NAMES)}\n")
    cmd = [str(Path(sys.executable).with_name("yolo")), "train", f"model={CONFIGS / 'yolov8n-attn.yaml'}",
           f"pretrained={source6}", f"data={data}", "epochs=1", "imgsz=64", "batch=4", "workers=0", "device=cpu",
           "plots=False", "amp=False", "val=False", f"project={tmp_path}", "name=run"]
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    line = next(m for m in out.splitlines() if m.startswith("yolo-attn: pretrained layers"))
    prefix = ("yolo-attn: pretrained layers mapped by order around the yolo_attn rows (0-15->0-15, 16-18->17-19, "
              "19-21->21-23, 22->25); transferred ")
    fresh = "left at initialisation: 16 SelfAttentionBlock, 20 SelfAttentionBlock, 24 SelfAttentionBlock"
    src = YOLO(str(source6)).model
    n = len(src.state_dict())
    if "nc 6 -> 80" not in line:  # the model is built at the data's 6 classes: everything transfers
        assert line == f"{prefix}{n}/{n} source tensors; {fresh} (only the inserted yolo_attn rows)"
    else:  # 8.3's CLI loads into the YAML's 80 classes first: the class branch tensors of another shape stay fresh
        wide = DetectionModel("yolov8n.yaml", nc=80, verbose=False).model[-1].state_dict()
        head = src.model[-1].state_dict()
        differ = sum(t.shape != wide[k].shape for k, t in head.items())
        assert line == f"{prefix}{n - differ}/{n} source tensors; {fresh}, 25 Detect ({differ}/{len(head)} tensors, " \
                       "nc 6 -> 80)"
    assert (tmp_path / "run" / "weights" / "last.pt").exists()


# ---------------------------------------------------------------- every shipped family x task

from ultralytics.nn import tasks  # noqa: E402

TASK_MODELS = {"": tasks.DetectionModel, "-seg": tasks.SegmentationModel, "-pose": tasks.PoseModel,
               "-obb": tasks.OBBModel, "-cls": tasks.ClassificationModel}


def perturbed_stock(cfg: str, model_cls: type, nc: int, seed: int = 4) -> nn.Module:
    """A stock model of any task with every float tensor (BN statistics included) moved off its initialisation."""
    model = model_cls(cfg, nc=nc, verbose=False)
    g = torch.Generator().manual_seed(seed)
    perturb_(model, g)
    model.names = {i: f"class{i}" for i in range(nc)}
    return model


def flat(y) -> list[torch.Tensor]:
    """Every tensor in a model's (nested) output, in order."""
    if isinstance(y, torch.Tensor):
        return [y]
    items = y.values() if isinstance(y, dict) else y if isinstance(y, (list, tuple)) else []
    return [t for v in items for t in flat(v)]


@pytest.mark.parametrize("task", list(TASK_MODELS))
@pytest.mark.parametrize("family", ["yolov8", "yolo11"])
def test_warm_start_every_family_and_task(family, task, tmp_path, log):
    """The shipped `<family>n<task>-attn.yaml` from the stock `<family>n<task>` checkpoint: all tensors, same outputs."""
    model_cls = TASK_MODELS[task]
    source = save(perturbed_stock(f"{family}n{task}.yaml", model_cls, nc=5), tmp_path / "stock.pt")
    plain = YOLO(str(source)).model
    attn = model_cls(f"{family}n{task}-attn.yaml", nc=5, verbose=False)
    attn.load(torch.load(source, weights_only=False))
    n = len(plain.state_dict())
    line = next(m for m in log if m.startswith("yolo-attn:"))
    fresh = [i for i, m in enumerate(attn.model) if isinstance(m, SelfAttentionBlock)]
    assert len(fresh) == (1 if task == "-cls" else 3)
    assert f"transferred {n}/{n} source tensors" in line
    assert line.endswith("left at initialisation: " + ", ".join(f"{i} SelfAttentionBlock" for i in fresh)
                         + " (only the inserted yolo_attn rows)")
    x = image()
    plain.eval(), attn.eval()
    with torch.no_grad():
        a, b = flat(plain(x)), flat(attn(x))
    assert len(a) == len(b) >= 1
    for s, t in zip(a, b):
        torch.testing.assert_close(s, t, atol=1e-5, rtol=0)
    assert a[0].std() > 1e-3  # a non-trivial output


@pytest.mark.parametrize("task", ["-cls", "-seg"])
def test_warm_start_other_class_count_refits_only_the_class_outputs(task, tmp_path, log):
    model_cls = TASK_MODELS[task]
    source = save(perturbed_stock(f"yolo11n{task}.yaml", model_cls, nc=5), tmp_path / "stock.pt")
    attn = model_cls(f"yolo11n{task}-attn.yaml", nc=3, verbose=False)
    attn.load(torch.load(source, weights_only=False))
    line = next(m for m in log if m.startswith("yolo-attn:"))
    head = len(attn.model) - 1
    if task == "-cls":  # Classify: only the final linear layer (weight, bias) is re-fit
        n = len(YOLO(str(source)).model.state_dict())
        assert f"transferred {n - 2}/{n} source tensors" in line and f"{head} Classify (2/" in line
        assert "nc 5 -> 3" in line and attn.model[-1].linear.out_features == 3
    else:
        assert f"{head} Segment (" in line and "nc 5 -> 3" in line
