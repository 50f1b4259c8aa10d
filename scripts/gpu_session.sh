#!/usr/bin/env bash
# One lease of the lent GPU machine (2x H100), run from the repository root there:
#   bash scripts/gpu_session.sh bench     DDP training (issue 11), fused-kernel check, speed/memory benchmark
#   bash scripts/gpu_session.sh accuracy  the accuracy comparison (issue 8): both datasets, 30 epochs
#   bash scripts/gpu_session.sh final     the speed benchmark in interleaved rounds, context set for 60 epochs
#   bash scripts/gpu_session.sh ctx640    the context set at 640 px
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
accuracy)
    python3 scripts/compare.py --data shapes,context --imgsz 320 --batch 32 --epochs 30 --seeds 0,1 \
        --parallel 12 --devices 0,1 --workers 2 --budget "$(left 440)" --out "$OUT" 2>&1 | tail -60
    ;;
esac
echo "session $(( $(date +%s) - T0 )) s"
