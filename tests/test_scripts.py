"""The benchmark tooling: variant specs and a CPU smoke run of scripts/benchmark.py."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from yolo_attn import Attention2d, SelfAttentionBlock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import refimpl  # noqa: E402
import variants  # noqa: E402


def test_spec_parsing_and_labels():
    assert variants.split_spec("yolov8n.yaml") == ("yolov8n.yaml", {})
    path, over = variants.split_spec("configs/yolov8n-attn.yaml:head_dim=16,kv_tokens=100,pos=False,type=efficient")
    assert path == "configs/yolov8n-attn.yaml"
    assert over == {"head_dim": 16, "kv_tokens": 100, "pos": False, "type": "efficient"}
    assert variants.label("configs/yolov8n-attn.yaml:head_dim=16") == "yolov8n-attn[head_dim=16]"
    with pytest.raises(SystemExit, match="unknown SelfAttentionBlock argument 'heads'"):
        variants.split_spec("configs/yolov8n-attn.yaml:heads=2")


def test_spec_training_arguments_per_model():
    spec = "configs/yolov8n-attn.yaml:mlp_ratio=2+attn_lr=10,attn_wd=0,optimizer=auto"
    assert variants.split_train(spec) == ("configs/yolov8n-attn.yaml:mlp_ratio=2", {"attn_lr": 10, "attn_wd": 0,
                                                                                 "optimizer": "auto"})
    assert variants.split_spec(spec) == ("configs/yolov8n-attn.yaml", {"mlp_ratio": 2.0})
    assert variants.label(spec) == "yolov8n-attn[mlp_ratio=2.0]+attn_lr=10,attn_wd=0,optimizer=auto"
    assert variants.split_train("yolov8n.yaml") == ("yolov8n.yaml", {})
    with pytest.raises(SystemExit, match="'lr0' .* is not key=value"):
        variants.split_train("yolov8n.yaml+lr0")


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\(\)` before")
def test_attention_parameters_get_their_own_optimizer_groups():
    """compare.py's `SPEC+attn_lr=K,attn_wd=W`: Ultralytics' optimizer and schedule, attention's share re-grouped."""
    from types import SimpleNamespace

    from torch.optim.lr_scheduler import LambdaLR
    from ultralytics.engine.trainer import BaseTrainer

    import compare_worker

    model = DetectionModel(str(REPO / "configs" / "yolov8n-attn.yaml"), verbose=False)
    opt = BaseTrainer.build_optimizer(SimpleNamespace(), model, "SGD", lr=0.01, momentum=0.9, decay=5e-4)
    lf = lambda epoch: 1 - epoch / 30  # noqa: E731  Ultralytics' linear schedule
    trainer = SimpleNamespace(model=model, optimizer=opt, lf=lf, scheduler=LambdaLR(opt, lr_lambda=lf))
    trainer.scheduler.last_epoch = -1  # as Ultralytics leaves it before the first epoch
    before = [(g["lr"], g["weight_decay"], len(g["params"])) for g in opt.param_groups]
    compare_worker.separate_attention_groups(trainer, attn_lr=10, attn_wd=0.0)
    attn = {id(p) for m in model.modules() if isinstance(m, SelfAttentionBlock) for p in m.parameters()}
    groups = opt.param_groups
    assert len(groups) == 2 * len(before)  # every group has attention parameters: a twin each
    for g, twin, (lr, wd, n) in zip(groups, groups[len(before):], before):
        assert not attn & {id(p) for p in g["params"]} and {id(p) for p in twin["params"]} <= attn
        assert len(g["params"]) + len(twin["params"]) == n and g["lr"] == lr and g["weight_decay"] == wd
        assert twin["lr"] == pytest.approx(10 * lr) and twin["weight_decay"] == (0.0 if wd > 0 else wd)
    assert sum(len(t["params"]) for t in groups[len(before):]) == len(attn)
    trainer.scheduler.last_epoch = 0
    trainer.scheduler.step()  # epoch 1: every group scaled from its own initial lr
    assert [g["lr"] for g in groups] == pytest.approx([g["initial_lr"] * lf(1) for g in groups])
    assert groups[len(before)]["initial_lr"] == pytest.approx(10 * groups[0]["initial_lr"])
    plain = DetectionModel("yolov8n.yaml", verbose=False)
    opt = BaseTrainer.build_optimizer(SimpleNamespace(), plain, "SGD", lr=0.01, momentum=0.9, decay=5e-4)
    plain_trainer = SimpleNamespace(model=plain, optimizer=opt, lf=lf, scheduler=LambdaLR(opt, lr_lambda=lf))
    with pytest.raises(ValueError, match="no yolo-attn layer"):
        compare_worker.separate_attention_groups(plain_trainer, attn_lr=10)


def test_materialized_variant_builds_with_every_row_overridden(tmp_path):
    path = variants.materialize("configs/yolov8n-attn.yaml:head_dim=16,kv_tokens=100", tmp_path)
    assert Path(path).parent == tmp_path and "yolov8n" in Path(path).name  # scale still read from the name
    model = DetectionModel(path, verbose=False)
    blocks = [m for m in model.modules() if isinstance(m, SelfAttentionBlock)]
    assert len(blocks) == 3
    assert all(b.attn.head_dim == 16 and b.attn.kv_tokens == 100 for b in blocks)
    assert blocks[0].c1 == 64  # scale n widths: the override did not change the scale
    assert variants.materialize("yolov8n.yaml", tmp_path) == "yolov8n.yaml"  # no override: the config itself
    assert variants.materialize("yolov8n.yaml+optimizer=auto", tmp_path) == "yolov8n.yaml"  # training args: not here
    ffn = variants.materialize("configs/yolov8n-attn.yaml:mlp_ratio=2", tmp_path)
    assert {m.ffn[1].out_channels for m in DetectionModel(ffn, verbose=False).modules()
            if isinstance(m, SelfAttentionBlock)} == {128, 256, 512}
    with pytest.raises(SystemExit, match="has no such row"):
        variants.materialize("yolov8n.yaml:head_dim=16", tmp_path)


def test_benchmark_cpu_smoke_run_interleaves_and_reports(tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--device", "cpu", "--quick",
           "--sections", "train,latency", "--rounds", "2", "--train-sizes", "64:2", "--latency-batches", "1",
           "yolov8n.yaml", "configs/yolov8n-attn.yaml:head_dim=16", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    models = json.loads((out / "benchmark.json").read_text())["models"]
    assert list(models) == ["yolov8n", "yolov8n-attn[head_dim=16]"]
    for m in models.values():
        train, lat = m["train@64b2"], m["lat@64b1"]
        assert train["rounds"] == 2 and train["steps"] == 2 and train["img_s"] > 0  # 1 step per round (--quick)
        assert lat["ms"] > 0 and lat["iters"] >= 2
    assert models["yolov8n"]["train@64b2"]["ratio_min"] == 1.0  # per-round ratios are against the first model
    assert "| yolov8n-attn[head_dim=16] |" in (out / "benchmark.md").read_text()


@pytest.mark.parametrize("cfg", ["yolov8n-seg-attn.yaml", "yolo11n-pose-attn.yaml", "yolov8n-obb.yaml"])
def test_benchmark_trains_each_task_with_its_own_loss(cfg):
    import bench_models
    from _common import Dev

    model = bench_models.build(cfg)
    task = {"seg": "segment", "pose": "pose", "obb": "obb"}[cfg.split("-")[1].removesuffix(".yaml")]
    assert bench_models.MODEL_CLASSES[task] is type(model)
    batch = bench_models.make_batch(2, 64, "cpu", model)
    assert {"segment": "masks", "pose": "keypoints", "obb": "bboxes"}[task] in batch
    if task == "segment":  # overlap format: each image's instances numbered 1..n, at 1/4 of the image side
        assert batch["masks"].shape == (2, 16, 16) and batch["masks"].max() <= 8 and batch["masks"].max() > 0
    if task == "obb":
        assert batch["bboxes"].shape[1] == 5
    step = bench_models.TrainStep(model, Dev(torch.device("cpu")), 64, 2, amp=False, channels_last=False)
    before = [p.detach().clone() for p in step.model.parameters()]
    loss, items = step.model(step.batch)  # the task's own criterion (Ultralytics picks it from the model class)
    term = {"segment": "seg_loss", "pose": "pose_loss", "obb": "angle_loss"}[task]
    assert torch.isfinite(loss).all() and term in items and items[term] > 0  # the task's own term sees its labels
    step()
    assert any(not torch.equal(a, b) for a, b in zip(before, step.model.parameters()))


def test_benchmark_profiles_an_eval_forward(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "benchmark.py"), "--device", "cpu", "--profile",
           "configs/yolov8n-attn.yaml", "--profile-infer", "--train-sizes", "64:2", "--train-steps", "2",
           "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    md = (tmp_path / "profile_yolov8n-attn.md").read_text()
    assert md.startswith("## Profile of one fp32 eval forward: yolov8n-attn @64px b2")
    blocks = [line for line in md.splitlines() if line.startswith("| model.") and "SelfAttentionBlock" in line]
    assert len(blocks) == 3 and all(int(b.split("|")[2]) > 0 for b in blocks)  # each block's forward ops counted


def _has_history() -> bool:
    return shutil.which("git") is not None and subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD~5"], capture_output=True).returncode == 0


def _block_and_input() -> tuple[SelfAttentionBlock, torch.Tensor]:
    block = SelfAttentionBlock(64, "standard", 64, None, None, True, 20)
    torch.nn.init.normal_(block.attn.proj.weight, std=0.1)
    return block, torch.randn(2, 64, 12, 16)


def test_split_rev():
    assert refimpl.split_rev("configs/yolov8n-attn.yaml@66f4337") == ("configs/yolov8n-attn.yaml", "66f4337")
    assert refimpl.split_rev("configs/yolov8n-attn.yaml:head_dim=16") == ("configs/yolov8n-attn.yaml:head_dim=16", None)


@pytest.mark.parametrize("rev", ["HEAD", "HEAD~5"])
def test_a_revisions_attention_runs_in_todays_model(rev):
    # `config@REV` / `--ref REV`: the attention methods of a git revision, on today's modules and weights.
    if not _has_history():
        pytest.skip("needs the git history of this checkout")
    block, x = _block_and_input()
    want = block(x)
    refimpl.use_revision(block, rev)
    assert type(block.attn).__name__ == f"Attention2d@{rev}" and isinstance(block.attn, Attention2d)
    forward = inspect.unwrap(type(block.attn).forward)  # wrapped for revisions before forward's shortcut argument
    assert re.fullmatch(rf"{re.escape(rev)}:yolo_attn/(\w+/)*attention2d\.py", forward.__code__.co_filename)
    assert "shortcut" in inspect.signature(type(block.attn).forward).parameters  # as the block (and THOP) call it
    got = block(x)
    unchanged = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", rev, "--", "yolo_attn"])
    if unchanged.returncode == 0:  # the revision's code is this checkout's: the same outputs
        torch.testing.assert_close(got, want)
    assert got.shape == want.shape
    with pytest.raises(SystemExit, match="no Attention2d"):
        refimpl.use_revision(torch.nn.Linear(2, 2), rev)
    with pytest.raises(SystemExit, match="cannot read the yolo_attn package"):
        refimpl.attention2d_at("no-such-revision-xyz")


# A revision laid out in folders: Attention2d in yolo_attn/layers/, a mixin and a position table beside it, relative
# imports, and a package __init__ that must not run (it would register with Ultralytics a second time).
MOVED_TREE = {
    "yolo_attn/__init__.py": "raise RuntimeError('the revision package __init__ ran')\n",
    "yolo_attn/layers/__init__.py": "",
    "yolo_attn/layers/helpers.py": "def doubled(t):\n    return 2 * t\n",
    "yolo_attn/layers/layouts.py": (
        "from .helpers import doubled\n\n\nclass Rows:\n    def rows(self, x):\n        return doubled(x)\n"),
    "yolo_attn/layers/pos_embed.py": (
        "import torch.nn as nn\n\n\nclass PositionalEncoding2d(nn.Module):\n"
        "    def origin(self):\n        return 'moved'\n"),
    "yolo_attn/layers/attention2d.py": (
        "import torch.nn as nn\n\nfrom .layouts import Rows\nfrom .pos_embed import PositionalEncoding2d\n\n\n"
        "class Attention2d(Rows, nn.Module):\n    def forward(self, x, shortcut=None):\n"
        "        out = self.rows(x)\n        return out if shortcut is None else shortcut + out\n"),
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_revision_with_the_layer_in_a_subpackage_loads(tmp_path):
    repo = tmp_path / "repo"
    for rel, text in MOVED_TREE.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "moved")
    (repo / "yolo_attn/layers/helpers.py").write_text("def doubled(t):\n    return 3 * t\n")  # the working tree
    _git(repo, "archive", "-o", str(tmp_path / "moved.tar"), "HEAD", "yolo_attn")

    sources = {"git": ("HEAD", repo), "tar": (str(tmp_path / "moved.tar"), REPO),
               "directory": (str(repo), REPO)}  # the last reads the working tree: 3x, not the commit's 2x
    for how, (rev, where) in sources.items():
        block, x = _block_and_input()
        refimpl.use_revision(block, rev, where)
        assert isinstance(block.attn, Attention2d), how
        assert type(block.attn.pos).origin(block.attn) == "moved", how  # the position table's class: the revision's
        factor = 3 if how == "directory" else 2
        torch.testing.assert_close(block(x), x + factor * block.norm(x), msg=how)
        assert inspect.unwrap(type(block.attn).forward).__code__.co_filename.endswith(
            "yolo_attn/layers/attention2d.py"), how
    (repo / "yolo_attn/layers/attention2d.py").write_text("class Other:\n    pass\n")
    with pytest.raises(SystemExit, match="defines class Attention2d"):
        refimpl.revision_attention2d(str(repo))


def test_block_costs_cpu_smoke_run(tmp_path):
    cmd = [sys.executable, str(REPO / "scripts" / "block_costs.py"), "--device", "cpu", "--quick",
           "--sections", "ops,blocks", "--out", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((tmp_path / "block_costs.json").read_text())
    assert [row[1] for row in res["blocks"]] == ["64x80x80", "128x40x40", "256x20x20"]
    assert all(float(row[2]) > 0 for row in res["blocks"])  # host time measured
    assert len(res["ops"]) == 7 and all(float(a) > 0 and float(b) > 0 for _, a, b in res["ops"])


def test_benchmark_targets_come_from_targets_json():
    import types

    import bench_report

    spec = bench_report.load_targets()
    assert spec["reference"] == "yolov8n" and spec["targets"]
    bench = types.SimpleNamespace(args=types.SimpleNamespace(latency_imgsz=640), train_sizes=[(640, 32), (1280, 8)],
                                  latency_batches=[1, 32], hires_sizes=[2048, 4096, 8192],
                                  dev=types.SimpleNamespace(cuda=True))
    got = [(label, key, field, higher, round(limit, 4)) for label, key, field, higher, limit, _ in
           bench_report.targets(bench, spec)]
    assert got == [
        ("train@640 >=0.90", "train@640b32", "img_s", True, 0.9),
        ("train@640 >=0.95 (P4+P5)", "train@640b32", "img_s", True, 0.95),
        ("train@1280 >=0.85", "train@1280b8", "img_s", True, 0.85),
        ("GPU-bound train@640 >=0.90", "train@640b32", "gpu_ms", False, round(1 / 0.9, 4)),
        ("GPU-bound @640 >=0.95 (P4+P5)", "train@640b32", "gpu_ms", False, round(1 / 0.95, 4)),
        ("GPU-bound train@1280 >=0.85", "train@1280b8", "gpu_ms", False, round(1 / 0.85, 4)),
        ("train mem@640 <=1.15", "train@640b32", "peak_gib", False, 1.15),
        ("train mem@1280 <=1.15", "train@1280b8", "peak_gib", False, 1.15),
        ("lat b32 <=1.25", "lat@640b32", "ms", False, 1.25),
        ("lat b1 <=1.30", "lat@640b1", "ms", False, 1.3),
        ("4096px lat <=1.5", "hires@4096", "ms", False, 1.5),
        ("4096px mem <=1.2", "hires@4096", "peak_gib", False, 1.2),
        ("8192px lat <=1.5", "hires@8192", "ms", False, 1.5),
        ("8192px mem <=1.2", "hires@8192", "peak_gib", False, 1.2),
    ]
    applies = {label: fn for label, *_, fn in bench_report.targets(bench, spec)}
    assert applies["train@640 >=0.90"]("yolov8n-attn") and not applies["train@640 >=0.90"]("yolov8n-attn-p45")
    assert applies["train@640 >=0.95 (P4+P5)"]("yolov8n-attn-p45") and not applies["train@640 >=0.90"]("yolo11n")
    bench.dev.cuda, bench.train_sizes, bench.hires_sizes = False, [(64, 2)], []
    assert [t[0] for t in bench_report.targets(bench, spec)] == ["train mem@64 <=1.15", "lat b32 <=1.25", "lat b1 <=1.30"]
    with pytest.raises(SystemExit, match="unknown model group 'nope'"):
        bench_report.targets(bench, {**spec, "targets": [{**spec["targets"][6], "models": "nope"}]})


def test_common_helpers():
    import _common

    assert _common.parse_sizes("640:32,1280:8") == [(640, 32), (1280, 8)] and _common.ints("1,32,") == [1, 32]
    assert [_common.num(v) for v in (678.4, 30.44, 4.031, 0.1934)] == ["678", "30.4", "4.03", "0.193"]
    assert _common.table(["a", "b"], [["1", "2"]]) == ["| a | b |", "|---|---|", "| 1 | 2 |"]
    err = RuntimeError("No kernel. (Triggered internally at foo.cpp:12.) More text here.")
    assert _common.error_text(err, ["why"]) == "error: RuntimeError: No kernel. | why"
    assert _common.error_text(RuntimeError("CUDA out of memory. Tried")) == "OOM"
    assert _common.short("a  b\nc" * 40, 10) == "a b ca ..."
    env = _common.env_header(torch.device("cpu"))
    assert env["torch"] == torch.__version__ and env["device"]


# Scripts that share _common (compare.py, the accuracy suite's, is kept apart).
SHARED = ("benchmark.py", "bench_infer.py", "bench_models.py", "bench_profile.py", "bench_report.py", "bench_run.py",
          "bench_train.py", "block_costs.py", "gpu_check.py", "sdpa_layers.py", "refimpl.py", "variants.py")


@pytest.mark.parametrize("name", SHARED)
def test_scripts_stay_lean_and_share_their_helpers(name):
    import ast

    text = (REPO / "scripts" / name).read_text()
    assert len(text.splitlines()) <= 400, f"{name}: split it by idea"
    defined = {n.name for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    pasted = defined & {"log", "short", "is_oom", "error_text", "first_sentence", "Dev", "table", "num", "env_header",
                        "parse_sizes", "ints", "profiled_events"}
    assert not pasted or name == "bench_report.py" and pasted == {"env_header"}, f"{name} defines {pasted}: use _common"


def test_compare_suite_cpu_smoke_run(tmp_path):
    """Two suite tasks (one neutral, one context), 8 images at 64 px, 1 epoch: tables, summary and the ceiling."""
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "scripts" / "compare.py"), "--suite", "shapes,count", "--models", "yolov8n.yaml",
           "--epochs", "1", "--imgsz", "64", "--batch", "8", "--seeds", "0", "--n-train", "8", "--n-val", "4",
           "--parallel", "2", "--devices", "cpu", "--workers", "0", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    runs = {x["dataset"]: x for x in res["runs"]}
    assert set(runs) == {"shapes:default", "count:cue"} and all(x["status"] == "ok" for x in runs.values())
    assert runs["count:cue"]["train_args"]["mosaic"] == 0.0 and "mosaic" not in runs["shapes:default"]["train_args"]
    assert runs["count:cue"]["map50_95_agnostic"] is not None  # the ceiling: context tasks only
    assert runs["shapes:default"].get("map50_95_agnostic") is None
    twin = Path(runs["count:cue"]["agnostic_data"]).parent
    lines = [ln for p in (twin / "labels" / "val").glob("*.txt") for ln in p.read_text().splitlines()]
    assert lines and {ln.split()[0] for ln in lines} == {"0"}
    suite = res["suite"]
    assert suite["baseline"] == "yolov8n" and set(suite["tasks"]) == {"shapes:default", "count:cue"}
    row = suite["summary"]["main"]["yolov8n"]
    assert row["neutral_tasks"] == 1 and row["context_tasks"] == 1 and row["neutral_delta"] == 0.0
    md = (out / "results.md").read_text()
    assert "### Suite summary (each task's main protocol)" in md and "### count:cue (context, 64 px" in md


def test_compare_merge_joins_calls_into_one_suite_report(tmp_path):
    """--merge: runs of two calls (different seeds, models) become one report; a later file's run replaces an
    earlier one of the same task, model and seed; unfinished runs are left out."""
    def results(path, runs):
        tasks = {"shapes:default": {"task": "shapes", "protocol": "default", "imgsz": 320},
                 "count:cue": {"task": "count", "protocol": "cue", "imgsz": 320}}
        path.write_text(json.dumps({"suite": {"tasks": tasks}, "runs": [
            {"dataset": d, "model": m, "seed": s, "status": st, "map50_95": v, "map50_95_agnostic": c}
            for d, m, s, st, v, c in runs]}))
        return str(path)

    a = results(tmp_path / "a.json", [("shapes:default", "yolov8n", 0, "ok", 0.6, None),
                                      ("count:cue", "yolov8n", 0, "ok", 0.2, 0.8),
                                      ("count:cue", "yolov8n", 1, "killed (budget)", 0.0, None)])
    b = results(tmp_path / "b.json", [("shapes:default", "yolov8n", 1, "ok", 0.7, None),
                                      ("count:cue", "yolov8n", 1, "ok", 0.7, 0.8),  # found: 0.7 >= 0.8 * 5 / 8
                                      ("count:cue", "yolo11n", 0, "ok", 0.3, 0.8),
                                      ("count:cue", "yolov8n", 0, "ok", 0.25, 0.8)])  # replaces a.json's seed 0
    out = tmp_path / "merged"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "compare.py"), "--merge", a, b, "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    suite = json.loads((out / "results.json").read_text())["suite"]
    v8 = suite["tasks"]["count:cue"]["models"]["yolov8n"]
    assert v8["per_seed"] == {"0": 0.25, "1": 0.7} and v8["found"] == {"0": False, "1": True}
    assert suite["tasks"]["shapes:default"]["models"]["yolov8n"]["per_seed"] == {"0": 0.6, "1": 0.7}
    assert suite["summary"]["main"]["yolo11n"]["neutral"] is None  # a model missing from a task has no suite mean
    assert "| yolov8n | 0.475±0.318 | 0.250 / 0.700* |" in (out / "results.md").read_text()
    assert (out / "suite.png").stat().st_size > 1000


def test_compare_suite_found_cue_and_summary():
    """The summary's arithmetic on hand-made run records: means over tasks, deltas, 2-of-3 seed counting."""
    import compare_suite as cs

    def run(task, model, seed, m, ceiling=None):
        return dict(dataset=task, model=model, seed=seed, status="ok", map50_95=m, map50_95_agnostic=ceiling)

    data = [("shapes:default", "", {}, {"task": "shapes", "protocol": "default", "imgsz": 320}),
            ("count:cue", "", {}, {"task": "count", "protocol": "cue", "imgsz": 320})]
    runs = [run("shapes:default", "a", s, 0.6) for s in range(3)]
    runs += [run("shapes:default", "b", s, 0.5) for s in range(3)]
    # K = 4, ceiling 0.8: threshold 0.5. Model a finds the cue in 2 of 3 seeds, b in none (0.2 = ceiling / K).
    runs += [run("count:cue", "a", 0, 0.7, 0.8), run("count:cue", "a", 1, 0.5, 0.8), run("count:cue", "a", 2, 0.3, 0.8)]
    runs += [run("count:cue", "b", s, 0.2, 0.8) for s in range(3)] + [run("count:cue", "b", 3, 0.0, 0.0)]
    s = cs.suite_summary(runs, data, ["a", "b"], "b")
    a, b = s["summary"]["main"]["a"], s["summary"]["main"]["b"]
    assert a["neutral"] == pytest.approx(0.6) and a["neutral_delta"] == pytest.approx(0.1)
    assert a["context"] == pytest.approx(0.5) and a["context_delta"] == pytest.approx(0.5 - 0.15)
    assert s["tasks"]["count:cue"]["models"]["a"]["found"] == {0: True, 1: True, 2: False}
    assert a["cue_tasks_2of3"] == 1 and a["cue_seeds"] == "2/3"
    assert b["cue_tasks_2of3"] == 0 and b["cue_seeds"] == "0/4"  # a zero ceiling never counts as found
    with pytest.raises(SystemExit, match="not one of the models"):
        cs.resolve_baseline("yolo11n.yaml", ["yolov8n.yaml"], ["yolov8n"])
    assert cs.resolve_baseline("yolov8n.yaml", ["x/yolov8n.yaml", "y.yaml"], ["yolov8n", "y"]) == "yolov8n"
