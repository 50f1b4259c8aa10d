"""The models and steps the benchmark times: the task's model (detect, segment, pose, obb) from a spec, one AMP
training step with that task's loss, one fused eval forward, and Ultralytics' training-time switches
(deterministic mode)."""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path

import _common  # noqa: F401  (the repository root on sys.path)
import torch
import torch.nn as nn
import ultralytics.nn.tasks  # noqa: F401  (before yolo_attn: registration then happens at import)

import refimpl
import variants
from _common import Dev
from yolo_attn.integration import register

register()  # idempotent; makes sure get_flops / config search / YAML names are in place
from ultralytics.cfg import get_cfg  # noqa: E402
from ultralytics.nn.tasks import DetectionModel, OBBModel, PoseModel, SegmentationModel  # noqa: E402
from ultralytics.nn.tasks import guess_model_task  # noqa: E402
from ultralytics.utils import DEFAULT_CFG  # noqa: E402
from ultralytics.utils import torch_utils  # noqa: E402  (torch_utils.get_flops read at call time: yolo_attn wraps it)

MODEL_CLASSES = {"detect": DetectionModel, "segment": SegmentationModel, "pose": PoseModel, "obb": OBBModel}
VARIANT_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / "yolo_attn_bench_variants"


def name_of(cfg: str) -> str:
    path, rev = refimpl.split_rev(cfg)
    return variants.label(path) + (f"@{rev}" if rev else "")



def set_deterministic(on: bool):
    """What Ultralytics' trainer does with deterministic=True (its default), and undoes after training."""
    if on:
        torch_utils.init_seeds(0, deterministic=True)
    else:
        torch_utils.unset_deterministic()



def build(spec: str) -> nn.Module:
    """The task's model (from the YAML's head: DetectionModel, SegmentationModel, ...) for a YAML or a variant spec
    (`configs/yolov8n-attn.yaml:head_dim=64`, see variants.py), optionally `...@REV`: its attention as at git
    revision REV (see refimpl.py)."""
    spec, rev = refimpl.split_rev(spec)
    cfg = variants.materialize(spec, VARIANT_DIR)
    task = guess_model_task(cfg)
    if task not in MODEL_CLASSES:
        raise SystemExit(f"benchmark: {spec!r} is a {task} model; the training step covers {sorted(MODEL_CLASSES)}")
    model = MODEL_CLASSES[task](cfg, nc=80, verbose=False)
    if rev:
        refimpl.use_revision(model, rev)
    model.args = get_cfg(DEFAULT_CFG)  # hyperparameters the loss reads (box, cls, dfl gains)
    return model


def make_batch(batch: int, imgsz: int, device, model: nn.Module | None = None, boxes_per_image: int = 8,
               seed: int = 0) -> dict:
    """Ultralytics' training batch dict for the model's task, fixed by the seed: images in [0, 1], normalised xywh
    boxes (+ an angle for obb), overlap-format instance masks at 1/4 size (segment: each box filled with its index
    within the image + 1, as `overlap_mask=True` loads them), random keypoints inside each box (pose)."""
    g = torch.Generator().manual_seed(seed)
    n = batch * boxes_per_image
    xy = torch.rand(n, 2, generator=g) * 0.8 + 0.1
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.02
    out = {
        "img": torch.rand(batch, 3, imgsz, imgsz, generator=g),
        "batch_idx": torch.arange(batch).repeat_interleave(boxes_per_image).float(),
        "cls": torch.randint(0, 80, (n, 1), generator=g).float(),
        "bboxes": torch.cat((xy, wh), 1),
    }
    task = guess_model_task(model) if model is not None else "detect"
    if task == "obb":
        out["bboxes"] = torch.cat((xy, wh, (torch.rand(n, 1, generator=g) - 0.5) * torch.pi), 1)
    elif task == "segment":
        side = imgsz // 4
        masks = torch.zeros(batch, side, side)
        lo = ((xy - wh / 2).clamp(0, 1) * side).long()
        hi = ((xy + wh / 2).clamp(0, 1) * side).long() + 1
        for i in range(n):
            b, j = divmod(i, boxes_per_image)
            masks[b, lo[i, 1] : hi[i, 1], lo[i, 0] : hi[i, 0]] = j + 1
        out["masks"] = masks
    elif task == "pose":
        k, dims = model.yaml.get("kpt_shape", [17, 3])
        kpts = (xy[:, None] + (torch.rand(n, k, 2, generator=g) - 0.5) * wh[:, None]).clamp(0, 1)
        if dims == 3:
            kpts = torch.cat((kpts, torch.ones(n, k, 1)), 2)
        out["keypoints"] = kpts
    return {key: v.to(device) for key, v in out.items()}


class TrainStep:
    """One Ultralytics-style AMP training step on a copy of the model."""

    def __init__(
        self, base: nn.Module, dev: Dev, imgsz: int, batch: int, amp: bool, channels_last: bool, compile_mode: str = ""
    ):
        self.dev = dev
        self.model = copy.deepcopy(base).to(dev.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.train()
        self.model.criterion = None
        # `yolo train compile=...`: the network (images in, predictions out) compiled, the loss eager.
        self.compiled = torch.compile(self.model, mode=compile_mode) if compile_mode else None
        self.amp = amp and dev.cuda
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.batch = make_batch(batch, imgsz, dev.device, self.model)

    def __call__(self):
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp) if self.dev.cuda else contextlib.nullcontext():
            if self.compiled is not None:  # as Ultralytics' trainer does with compile on
                loss, _ = self.model.loss(self.batch, self.compiled(self.batch["img"]))
            else:
                loss, _ = self.model(self.batch)  # BaseModel.forward(dict) -> self.loss(batch): forward + criterion
            loss = loss.sum()
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=10.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)


class EvalStep:
    """One fused eval forward, as the latency section times it (a callable with `.model`, like TrainStep)."""

    def __init__(self, base: nn.Module, dev: Dev, imgsz: int, batch: int):
        self.model = inference_model(base, dev)
        self.x = rand_image(batch, imgsz, dev)

    def __call__(self):
        with torch.inference_mode():
            self.model(self.x)


def clear_detect_cache(model: nn.Module) -> nn.Module:
    """Drop the anchors a head cached while get_flops ran it: a fresh model, as a loaded checkpoint would be.

    (Left in place, they make torch.compile split the model into per-layer graphs and recompile per shape.)
    """
    for m in model.modules():
        if hasattr(type(m), "shape") and "shape" in vars(m) and hasattr(m, "anchors"):
            for attr in ("shape", "anchors", "strides"):
                vars(m).pop(attr, None)
    return model


def inference_model(base: nn.Module, dev: Dev) -> nn.Module:
    """Fused, fp16 (CUDA) eval model, as Ultralytics' predictor (AutoBackend) prepares a .pt model."""
    m = clear_detect_cache(copy.deepcopy(base)).to(dev.device)
    m = m.fuse(verbose=False)
    m = m.half() if dev.cuda else m.float()
    return m.eval()


def rand_image(batch, imgsz, dev: Dev):
    return torch.rand(batch, 3, imgsz, imgsz, device=dev.device, dtype=torch.float16 if dev.cuda else torch.float32)


def first_tensor(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        out = next(iter(out.values()))
    return out

