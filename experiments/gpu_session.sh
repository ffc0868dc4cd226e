#!/usr/bin/env bash
# What a lent GPU is for, prepared as two calls of the device tool (its 15 minutes leave no room for a retry):
#   bash experiments/gpu_session.sh checks   # the card, the GPU check, the step against its floor, the judges' pace
#   bash experiments/gpu_session.sh sweep    # the 12-layer, 9,216-unit sweep of model=random_base, in its time box
# Each part writes under $OUT as it goes (a log per part, the JSON each tool writes), so a part cut off by its box
# still returns what it did; a summary of the sweep's jobs is written even when the sweep is cut off.
# Packages the device lacks travel as wheels in .whl/ (experiments/RESULTS.md, "GPU", says which); Whisper's model
# and Praat do not fit in a call, so their judges are off or named as not heard. A dry run here:
#   OUT=/tmp/gpu PY=.venv/bin/python DEVICE=cpu QUICK=1 WHEELS=none bash experiments/gpu_session.sh checks
set -u
PART=${1:?checks or sweep}
OUT=${OUT:-/tmp/gpu-session}; PY=${PY:-python3}; DEVICE=${DEVICE:-cuda}; QUICK=${QUICK:-0}; WHEELS=${WHEELS:-.whl}
SWEEP=${SWEEP:-/tmp/gpu-sweep}   # the sweep's folder (a fresh machine's /tmp)
BOX=${BOX:-420}   # seconds for the whole part
mkdir -p "$OUT"
if [ -d "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
        && export PYTHONPATH="/tmp/site:$PWD" || { echo "gpu_session: the wheels did not install"; exit 1; }
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 AUDIATION_WHISPER_JUDGE=false WANDB_SILENT=true

left() { echo $(( BOX - SECONDS )); }
# box NAME SECONDS COMMAND...: the command in at most SECONDS (less when the part's box has less left), its
# output in $OUT/NAME.log and its last lines on the console.
box() {
    local name=$1 seconds=$2; shift 2
    local have; have=$(left)
    if (( have < 15 )); then echo "gpu_session: $name skipped, ${have} s left of the part's ${BOX} s"; return; fi
    (( seconds > have )) && seconds=$have
    echo "== $name (at most ${seconds} s) at ${SECONDS} s"
    timeout --kill-after=10 "$seconds" "$@" > "$OUT/$name.log" 2>&1
    echo "== $name: exit $? after ${SECONDS} s"; tail -n 30 "$OUT/$name.log"
}

if [ "$PART" = checks ]; then
    { nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
      "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"; nproc; } > "$OUT/card.txt" 2>&1
    cat "$OUT/card.txt"
    if (( QUICK )); then steps=2; layers=1; batches=1,2; targets=4; repeats=1; else steps=20; layers=1,12; batches=1,64,256,768; targets=768; repeats=1; fi
    box gpu_check 170 "$PY" experiments/gpu_check.py --device "$DEVICE" --steps "$steps" --json "$OUT/gpu_check.json"
    box benchmark 75 "$PY" experiments/benchmark.py --device "$DEVICE" --layers "$layers" --batches "$batches" \
        --repeats 3 --warmup 1 --no-naive --no-memory --json "$OUT/gpu.json"
    box judges 170 "$PY" experiments/benchmark.py --device "$DEVICE" --no-cells --no-files --no-memory --judges \
        --judges-targets "$targets" --judges-repeats "$repeats" --json "$OUT/judges.json"
elif [ "$PART" = sweep ]; then
    if (( QUICK )); then layers=1,2; units=0:4; steps=2; model=random_small; else layers=1,2,3,4,5,6,7,8,9,10,11,12; units=0:768; steps=${STEPS:-50}; model=random_base; fi
    box sweep $(( BOX - 20 )) "$PY" -m audiation.run --multirun "model=$model" "model.layer=$layers" objective=channel \
        "objective.unit=$units" batch_size=auto "steps=$steps" "device=$DEVICE" logger.mode=offline \
        "hydra.sweep.dir=$SWEEP"
    "$PY" - "$SWEEP" "$OUT/sweep.json" <<'EOF'
import json, pathlib, sys
jobs = []
for metrics in sorted(pathlib.Path(sys.argv[1]).glob("*/metrics.json")):
    found = json.loads(metrics.read_text())
    jobs.append({"job": metrics.parent.name, "targets": len(found.get("targets", [])), **found.get("run", {})})
pathlib.Path(sys.argv[2]).write_text(json.dumps(jobs, indent=1))
print(f"{len(jobs)} job(s) of the sweep wrote their metrics")
EOF
    cp "$SWEEP/report.md" "$OUT/" 2>/dev/null
fi
