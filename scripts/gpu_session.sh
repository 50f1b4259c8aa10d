#!/usr/bin/env bash
# One lease of the lent GPU machine (2 GPUs, H100 or H200), run from the repository root there:
#   bash scripts/gpu_session.sh bench     DDP training (issue 11), fused-kernel check, speed/memory benchmark
#   bash scripts/gpu_session.sh accuracy  the accuracy comparison (issue 8): both datasets, 30 epochs
#   bash scripts/gpu_session.sh final     the speed benchmark in interleaved rounds, context set for 60 epochs
#   bash scripts/gpu_session.sh ctx640    the context set at 640 px
#   bash scripts/gpu_session.sh sweep     block settings side by side (training), context at 640 px
#   bash scripts/gpu_session.sh release   fused-kernel check, every benchmark section for the shipped configs
#   bash scripts/gpu_session.sh neutral   the neutral (shapes) set at 320 px with the shipped default and its peers
#   bash scripts/gpu_session.sh sdpa      training and latency with each SDPA backend forced; an eval forward profiled
#   bash scripts/gpu_session.sh seeds345  seeds 3-5 of the context set at 640 px (default, YOLO11n, YOLO12n)
#   bash scripts/gpu_session.sh nobias    the bias-free block: every benchmark section, accuracy on both datasets vs yolov8n
#   bash scripts/gpu_session.sh speed     per-block costs and every benchmark section, next to the attention of REF
#                                         (default 66f4337, session B's release; without git history, a copy of
#                                         that revision's yolo_attn/ folder or `git archive REV yolo_attn` .tar)
#   bash scripts/gpu_session.sh compiled  training with the network compiled, as `yolo train compile=True`
# Ultralytics and its missing dependencies travel as wheels in .whl/ (see docs/benchmarks.md); yolo-attn is
# installed like a user would (regular install: the .pth auto-loader lands in site-packages).
set -uo pipefail
export PYTHONUNBUFFERED=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
OUT=${OUT:-$PWD/gpu_out}; mkdir -p "$OUT"
T0=$(date +%s); left() { echo $(( $1 - ($(date +%s) - T0) )); }
python3 -m pip install -q --no-index --no-deps .whl/*.whl && python3 -m pip install -q --no-index --no-deps --no-build-isolation . || exit 1
python3 -c "import torch, ultralytics, yolo_attn; print('torch', torch.__version__, 'ultralytics', ultralytics.__version__, 'gpus', torch.cuda.device_count(), torch.cuda.get_device_name(0))"
REPO=$PWD
case "${1:-bench}" in
bench)
    mkdir -p /tmp/ddp && cd /tmp/ddp || exit 1
    # no `import yolo_attn` anywhere: the stock CLI and its DDP workers must find the layers themselves
    common="model=$REPO/configs/yolov8n-attn.yaml data=attn-shapes.yaml epochs=3 imgsz=320 batch=64 workers=4 plots=False"
    timeout 150 yolo train $common device=0,1 project=/tmp/ddp name=ddp exist_ok=True > "$OUT/ddp.log" 2>&1; echo "ddp exit $?"
    timeout 90 yolo train $common device=0 project=/tmp/ddp name=one exist_ok=True > "$OUT/one_gpu.log" 2>&1; echo "one-gpu exit $?"
    { timeout 60 yolo val model=/tmp/ddp/ddp/weights/best.pt data=attn-shapes.yaml imgsz=320 device=0 plots=False
      timeout 90 yolo val model=/tmp/ddp/ddp/weights/best.pt data=attn-shapes.yaml imgsz=320 device=cpu plots=False; } >> "$OUT/ddp.log" 2>&1
    echo "val exit $?"
    tr '\r' '\n' < "$OUT/ddp.log" | grep -E " all |Speed|completed in|Error|error" | tail -8
    tr '\r' '\n' < "$OUT/one_gpu.log" | grep -E " all |Speed|completed in|Error|error" | tail -4
    cd "$REPO" || exit 1
    timeout 150 python3 scripts/gpu_check.py --out "$OUT" > "$OUT/gpu_check.log" 2>&1; echo "gpu_check exit $?"
    tail -45 "$OUT/gpu_check.log"
    python3 scripts/benchmark.py --out "$OUT" --budget-s "$(left 540)" > "$OUT/benchmark.log" 2>&1; echo "benchmark exit $?"
    tail -70 "$OUT/benchmark.log"
    ;;
final)
    python3 scripts/benchmark.py yolov8n.yaml configs/yolov8n-attn.yaml configs/yolov8n-attn-p45.yaml yolo11n.yaml yolo12n.yaml \
        --sections train,latency --rounds 3 --train-steps 20 --out "$OUT" --budget-s 200 > "$OUT/benchmark.log" 2>&1
    echo "benchmark exit $?"; sed -n '/^## yolo-attn benchmark/,$p' "$OUT/benchmark.log" | head -40
    python3 scripts/compare.py --data context --imgsz 320 --batch 32 --epochs 60 --seeds 0,1,2 \
        --models yolov8n.yaml configs/yolov8n-attn.yaml configs/yolov8n-attn-p45.yaml yolo12n.yaml \
        --parallel 12 --devices 0,1 --workers 2 --budget "$(left 470)" --out "$OUT/ctx60" > "$OUT/compare.log" 2>&1
    echo "compare exit $?"; grep -E "^\[|^\|" "$OUT/compare.log" | tail -25
    rm -rf "$OUT/ctx60/logs" "$OUT/ctx60/runs"
    ;;
ctx640)
    python3 scripts/compare.py --data context --imgsz 640 --batch 32 --epochs 30 --seeds 0,1,2 \
        --models yolov8n.yaml configs/yolov8n-attn.yaml configs/yolov8n-attn-p45.yaml \
        --parallel 9 --devices 0,1 --workers 3 --budget "$(left 250)" --out "$OUT" > "$OUT/compare.log" 2>&1
    echo "compare exit $?"; grep -E "^\[|^\|" "$OUT/compare.log" | tail -16
    rm -rf "$OUT/logs" "$OUT/runs"
    ;;
sweep)
    # block settings side by side (training only), then context at 640 px. (Run B2 also timed compiled blocks with
    # an experimental YOLO_ATTN_COMPILE switch that was not kept: docs/benchmarks.md.)
    A=configs/yolov8n-attn.yaml
    python3 scripts/benchmark.py yolov8n.yaml $A $A:head_dim=64 $A:kv_tokens=400 $A:head_dim=64,kv_tokens=400 \
        configs/yolov8n-attn-p45.yaml configs/yolov8n-attn-p45.yaml:head_dim=64 yolo11n.yaml yolo12n.yaml \
        --sections train --out /tmp/sweep --budget-s 150 > "$OUT/sweep.log" 2>&1
    echo "sweep exit $?"; sed -n '/^### Cost/,/^$/p;/^### Targets/,/^$/p' "$OUT/sweep.log"; cp /tmp/sweep/benchmark.json "$OUT/sweep.json"
    python3 scripts/compare.py --data context --imgsz 640 --batch 32 --epochs 30 --seeds 0,1,2 \
        --models yolov8n.yaml $A $A:head_dim=64,kv_tokens=400 yolo11n.yaml yolo12n.yaml \
        --parallel 15 --devices 0,1 --workers 2 --budget "$(left 560)" --out /tmp/ctx640 > "$OUT/ctx640.log" 2>&1
    echo "compare exit $?"; grep -E "^\[|^\|" "$OUT/ctx640.log" | tail -24
    cp /tmp/ctx640/results.json "$OUT/ctx640.json"; cp /tmp/ctx640/compare.png "$OUT/ctx640.png" 2>/dev/null
    ;;
release)
    A=configs/yolov8n-attn.yaml
    timeout 150 python3 scripts/gpu_check.py --out /tmp/gpu_check > "$OUT/gpu_check.log" 2>&1; echo "gpu_check exit $?"
    tail -30 "$OUT/gpu_check.log"
    python3 scripts/benchmark.py yolov8n.yaml $A configs/yolov8n-attn-p45.yaml $A:head_dim=32,kv_tokens=1600 \
        configs/yolov8n-attn-standard.yaml yolo11n.yaml yolo12n.yaml \
        --sections train,latency,hires,cudagraph --out /tmp/release --budget-s 330 > "$OUT/release.log" 2>&1
    echo "benchmark exit $?"; sed -n '/^## yolo-attn benchmark/,$p' "$OUT/release.log"; cp /tmp/release/benchmark.json "$OUT/release.json"
    ;;
neutral)
    python3 scripts/compare.py --data shapes --imgsz 320 --batch 32 --epochs 30 --seeds 0,1 \
        --models yolov8n.yaml configs/yolov8n-attn.yaml yolo11n.yaml yolo12n.yaml \
        --parallel 8 --devices 0,1 --workers 3 --budget "$(left 570)" --out /tmp/shapes > "$OUT/shapes.log" 2>&1
    echo "compare exit $?"; grep -E "^\[|^\|" "$OUT/shapes.log" | tail -14
    cp /tmp/shapes/results.json "$OUT/shapes.json"; cp /tmp/shapes/compare.png "$OUT/shapes.png" 2>/dev/null
    ;;
nobias)
    # the bias-free block: training cost, then accuracy on both datasets next to yolov8n (same settings as before)
    A=configs/yolov8n-attn.yaml
    python3 scripts/benchmark.py yolov8n.yaml $A configs/yolov8n-attn-p45.yaml yolo11n.yaml yolo12n.yaml \
        --sections train,latency,hires,cudagraph --out /tmp/nobias --budget-s 150 > "$OUT/nobias_bench.log" 2>&1
    echo "benchmark exit $?"; sed -n '/^## yolo-attn benchmark/,$p' "$OUT/nobias_bench.log"; cp /tmp/nobias/benchmark.json "$OUT/nobias_bench.json"
    python3 scripts/compare.py --data context --imgsz 640 --batch 32 --epochs 30 --seeds 0,1,2 \
        --models yolov8n.yaml $A --parallel 6 --devices 0,1 --workers 4 --budget "$(left 300)" --out /tmp/ctx > "$OUT/ctx640.log" 2>&1
    echo "compare exit $?"; grep -E "^\[|^\|" "$OUT/ctx640.log" | tail -10; cp /tmp/ctx/results.json "$OUT/ctx640.json"
    python3 scripts/compare.py --data shapes --imgsz 320 --batch 32 --epochs 30 --seeds 0,1 \
        --models yolov8n.yaml $A --parallel 4 --devices 0,1 --workers 6 --budget "$(left 400)" --out /tmp/shapes > "$OUT/shapes.log" 2>&1
    echo "compare exit $?"; grep -E "^\[|^\|" "$OUT/shapes.log" | tail -8; cp /tmp/shapes/results.json "$OUT/shapes.json"
    ;;
seeds345)
    # three more seeds of the context set at 640 px for the shipped default and the two attention peers
    python3 scripts/compare.py --data context --imgsz 640 --batch 32 --epochs 30 --seeds 3,4,5 \
        --models configs/yolov8n-attn.yaml yolo11n.yaml yolo12n.yaml --parallel 9 --devices 0,1 --workers 3 \
        --budget 200 --out /tmp/ctx345 > "$OUT/ctx345.log" 2>&1
    echo "compare exit $?"; grep -E "^\[|^\|" "$OUT/ctx345.log" | tail -14; cp /tmp/ctx345/results.json "$OUT/ctx345.json"
    ;;
speed)
    REF=${REF:-66f4337}; A=configs/yolov8n-attn.yaml; P=configs/yolov8n-attn-p45.yaml
    timeout 120 python3 scripts/block_costs.py --ref "$REF" > "$OUT/block_costs.log" 2>&1; echo "block_costs exit $?"
    grep "^|" "$OUT/block_costs.log"
    timeout 330 python3 scripts/benchmark.py yolov8n.yaml $A $P "$A@$REF" yolo11n.yaml yolo12n.yaml --rounds 8 \
        --sections train,latency,hires,cudagraph --out /tmp/speed --budget-s 300 > "$OUT/release.log" 2>&1
    echo "benchmark exit $?"; sed -n '/^## yolo-attn benchmark/,$p' "$OUT/release.log"; cp /tmp/speed/benchmark.json "$OUT/release.json"
    timeout 90 python3 scripts/benchmark.py yolov8n.yaml $A $P --sections train --rounds 8 --out /tmp/repeat \
        --budget-s 80 > "$OUT/repeat.log" 2>&1; echo "repeat exit $?"; sed -n '/^### Cost/,/^$/p' "$OUT/repeat.log"
    ;;
compiled)
    timeout 400 python3 scripts/benchmark.py yolov8n.yaml configs/yolov8n-attn.yaml configs/yolov8n-attn-p45.yaml \
        --sections train --train-sizes 640:32 --train-compile default --rounds 8 --out /tmp/compiled --budget-s 380 \
        > "$OUT/compiled.log" 2>&1; echo "compiled exit $?"; sed -n '/^### Cost/,/^$/p' "$OUT/compiled.log"
    ;;
sdpa)
    # which SDPA backend a training step and an inference batch are fastest with; where inference time goes
    A=configs/yolov8n-attn.yaml
    for b in default flash efficient; do
        python3 scripts/benchmark.py yolov8n.yaml $A $A:head_dim=32,kv_tokens=1600 configs/yolov8n-attn-p45.yaml \
            --sections train,latency --train-sizes 640:32 --sdpa $b --out /tmp/sdpa_$b --budget-s 100 > "$OUT/sdpa_$b.log" 2>&1
        echo "sdpa=$b exit $?"; sed -n '/^### Cost/,/^### Targets/p' "$OUT/sdpa_$b.log" | grep "^|"
    done
    for m in $A $A:head_dim=32,kv_tokens=1600; do
        python3 scripts/benchmark.py --profile "$m" --profile-infer --train-sizes 640:32 --out /tmp/prof >> "$OUT/profile_infer.log" 2>&1
        echo "profile $m exit $?"
    done
    grep -E "^Total|^\| ([1-9]|1[0-2]) \||^\| model\.|^\| \*\*all" "$OUT/profile_infer.log"
    ;;
accuracy)
    python3 scripts/compare.py --data shapes,context --imgsz 320 --batch 32 --epochs 30 --seeds 0,1 \
        --parallel 12 --devices 0,1 --workers 2 --budget "$(left 440)" --out "$OUT" 2>&1 | tail -60
    ;;
esac
echo "session $(( $(date +%s) - T0 )) s"
