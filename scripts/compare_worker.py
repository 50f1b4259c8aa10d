"""One training run of scripts/compare.py, in its own process (`compare.py _worker SPEC.json` runs it): train, time
every epoch and batch, validate class-agnostically where the run has a twin val set, measure the architecture's cost,
and write the run's compare_run.json."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path


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

        model = YOLO(spec["model"], task="detect")
        model.add_callback("on_train_epoch_start", on_epoch_start)
        model.add_callback("on_train_epoch_end", on_epoch_end)
        model.add_callback("on_train_batch_start", on_batch_start)
        model.add_callback("on_train_batch_end", on_batch_end)
        model.train(**spec["train_args"])
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
