"""One training run of scripts/compare.py, in its own process (`compare.py _worker SPEC.json` runs it): train, time
every epoch and batch, validate class-agnostically where the run has a twin val set, measure the architecture's cost,
and write the run's compare_run.json."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

# Train args that are not Ultralytics': the attention layers' own optimiser treatment (`--models SPEC+attn_lr=10`).
ATTN_OPTIM_ARGS = ("attn_lr", "attn_wd")


def separate_attention_groups(trainer, attn_lr: float = 1.0, attn_wd: float | None = None) -> None:
    """Move the plugin layers' parameters into optimizer groups of their own: lr x `attn_lr`, weight decay `attn_wd`.

    Runs at `on_pretrain_routine_end`, once Ultralytics has built its optimizer and scheduler: each of its groups
    (weights with decay, norm weights, biases) gets a twin holding the attention blocks' share, with the same settings
    but these; warm-up and the schedule then scale every group from its own initial lr.
    """
    from torch.optim.lr_scheduler import LambdaLR
    from yolo_attn_autoload import LAYER_NAMES

    plugin = {id(p) for m in trainer.model.modules() if type(m).__name__ in LAYER_NAMES for p in m.parameters()}
    opt = trainer.optimizer
    twins = []
    for g in opt.param_groups:
        moved = [p for p in g["params"] if id(p) in plugin]
        if not moved:
            continue
        g["params"] = [p for p in g["params"] if id(p) not in plugin]
        twin = {**{k: v for k, v in g.items() if k != "params"}, "params": moved}
        twin["lr"], twin["initial_lr"] = g["lr"] * attn_lr, g["initial_lr"] * attn_lr
        if attn_wd is not None and g["weight_decay"] > 0:
            twin["weight_decay"] = attn_wd
        twins.append(twin)
    if not twins:
        raise ValueError("attn_lr/attn_wd given, but the model has no yolo-attn layer")
    for twin in twins:
        opt.add_param_group(twin)
    print(f"compare: {len(plugin)} yolo-attn parameters in {len(twins)} groups of their own: lr x{attn_lr}, "
          f"weight decay {attn_wd if attn_wd is not None else 'unchanged'}", flush=True)
    last = trainer.scheduler.last_epoch
    trainer.scheduler = LambdaLR(opt, lr_lambda=trainer.lf)  # one lambda per group, the twins included
    trainer.scheduler.last_epoch = last


def worker(spec_path: str) -> int:
    """One training run, in its own process. Writes <run dir>/compare_run.json; exit code 0 on success."""
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["result"])
    info: dict = {"status": "failed", "pid": os.getpid()}
    t_start = time.perf_counter()
    try:
        import ultralytics.nn.tasks  # noqa: F401  (before yolo_attn: registration hooks onto this module)

        import yolo_attn  # noqa: F401  registers the attention layers with Ultralytics

        import torch
        from ultralytics import YOLO
        from ultralytics.utils import torch_utils

        if spec.get("threads"):  # Ultralytics resets CPU training to min(8, cores - 1) threads: respect our share
            torch_utils.NUM_THREADS = int(spec["threads"])
            torch.set_num_threads(int(spec["threads"]))

        timing = {"t0": 0.0, "b0": 0.0, "epoch_s": [], "compute_s": 0.0, "n_train": None, "device_name": None}

        def _sync(trainer) -> None:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)

        def on_epoch_start(trainer) -> None:
            _sync(trainer)
            timing["t0"] = time.perf_counter()

        def on_batch_start(trainer) -> None:  # fires once the batch is loaded
            timing["b0"] = time.perf_counter()

        def on_batch_end(trainer) -> None:  # after forward, backward and (maybe) the optimizer step
            _sync(trainer)
            timing["compute_s"] += time.perf_counter() - timing["b0"]

        def on_epoch_end(trainer) -> None:  # fires after the batch loop, before validation
            _sync(trainer)
            timing["epoch_s"].append(time.perf_counter() - timing["t0"])
            timing["n_train"] = len(trainer.train_loader.dataset)
            if timing["device_name"] is None:
                d = trainer.device
                timing["device_name"] = torch.cuda.get_device_name(d) if d.type == "cuda" else str(d)

        train_args = dict(spec["train_args"])
        attn_optim = {k: train_args.pop(k) for k in ATTN_OPTIM_ARGS if k in train_args}
        model = YOLO(spec["model"], task="detect")
        if attn_optim:
            model.add_callback("on_pretrain_routine_end", lambda tr: separate_attention_groups(tr, **attn_optim))
        model.add_callback("on_train_epoch_start", on_epoch_start)
        model.add_callback("on_train_epoch_end", on_epoch_end)
        model.add_callback("on_train_batch_start", on_batch_start)
        model.add_callback("on_train_batch_end", on_batch_end)
        model.train(**train_args)
        trainer = model.trainer

        train_s = sum(timing["epoch_s"])
        n_img = (timing["n_train"] or 0) * len(timing["epoch_s"])
        info.update(
            status="ok",
            save_dir=str(trainer.save_dir),
            device_name=timing["device_name"],
            n_train=timing["n_train"],
            epochs_done=len(timing["epoch_s"]),
            epoch_s=[round(t, 3) for t in timing["epoch_s"]],
            train_s=train_s,
            img_s=n_img / train_s if train_s > 0 else None,
            compute_s=timing["compute_s"],
            compute_img_s=n_img / timing["compute_s"] if timing["compute_s"] > 0 else None,
            final_eval={k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))},
        )
        if spec.get("agnostic_data"):  # the localisation ceiling: same model, every box one class
            ta = spec["train_args"]
            m = model.val(
                data=spec["agnostic_data"], single_cls=True, imgsz=ta["imgsz"], batch=ta["batch"],
                device=ta.get("device"), workers=ta.get("workers", 0), plots=False, verbose=False,
                project=ta["project"], name=ta["name"] + "-agnostic", exist_ok=True,
            )
            info["map50_95_agnostic"] = float(m.box.map)
        # Cost of the architecture, on a fresh CPU copy (training model untouched). get_flops is looked up at call
        # time: yolo_attn replaces it with a version that is exact for attention layers.
        try:
            from ultralytics.nn.tasks import DetectionModel

            m = DetectionModel(spec["model"], nc=len(trainer.data["names"]), verbose=False)
            info["params"] = torch_utils.get_num_params(m)
            info["gflops"] = torch_utils.get_flops(m, spec["train_args"]["imgsz"])
            info["gflops640"] = torch_utils.get_flops(m, 640)
        except Exception as e:  # cost is informative only
            info["cost_error"] = f"{type(e).__name__}: {e}"
        if not spec.get("keep_weights"):
            shutil.rmtree(Path(trainer.save_dir) / "weights", ignore_errors=True)
    except BaseException as e:
        import traceback

        traceback.print_exc()
        info["error"] = f"{type(e).__name__}: {e}"[:500]
    info["wall_s"] = time.perf_counter() - t_start
    out.write_text(json.dumps(info, indent=1))
    return 0 if info["status"] == "ok" else 1
