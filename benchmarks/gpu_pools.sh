#!/usr/bin/env bash
# Train the MNIST LeNet pools of the adaptation/attack experiments with the original recipe
# (40 epochs, batch 1024, Adam lr 2e-4 halved at epoch 20) on a GPU: 200 nets to distill on and
# 20 held-out nets, PARALLEL (100) nets at once (vmap). Then, unless POOLS_ONLY=1, run
# benchmarks/pretrained.py on them (the two experiments of the README).
#
#   benchmarks/gpu_pools.sh OUT_DIR [DATA_DIR]        # writes OUT_DIR/pools, OUT_DIR/runs,
#                                                      # OUT_DIR/pretrained.md, OUT_DIR/log.txt
# Smoke settings (e.g. on CPU): N_TRAIN=2 N_TEST=1 EPOCHS=1 DEVICE=cpu \
#     EXPERIMENT_ARGS="--set outer_steps=2 --set batch_size=64" benchmarks/gpu_pools.sh OUT_DIR
set -euo pipefail
OUT=${1:?usage: benchmarks/gpu_pools.sh OUT_DIR [DATA_DIR]}
DATA=${2:-${SOFTDISTILL_DATA:?give DATA_DIR or set SOFTDISTILL_DATA}}
DEVICE=${DEVICE:-cuda}
N_TRAIN=${N_TRAIN:-200}
N_TEST=${N_TEST:-20}
PARALLEL=${PARALLEL:-100}
EPOCHS=${EPOCHS:-40}
PY=${PYTHON:-$(dirname "$0")/../.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
RECIPE=(--dataset mnist --data-dir "$DATA" --arch lenet --epochs "$EPOCHS" --decay_every 20
        --lr 2e-4 --batch_size 1024 --device "$DEVICE" --parallel "$PARALLEL")
start=$(date +%s)
"$PY" -m softdistill train "${RECIPE[@]}" --n_nets "$N_TRAIN" --split train \
    --out "$OUT/pools/mnist_lenet_train"
"$PY" -m softdistill train "${RECIPE[@]}" --n_nets "$N_TEST" --split test \
    --out "$OUT/pools/mnist_lenet_test"
echo "pools trained in $(( $(date +%s) - start )) s"
if [ "${POOLS_ONLY:-0}" != 1 ]; then
    "$PY" "$(dirname "$0")/pretrained.py" --data-dir "$DATA" --device "$DEVICE" \
        --train-pool "$OUT/pools/mnist_lenet_train" --test-pool "$OUT/pools/mnist_lenet_test" \
        --runs "$OUT/runs" --table "$OUT/pretrained.md" ${EXPERIMENT_ARGS:-}
    echo "pools and experiments done in $(( $(date +%s) - start )) s"
fi
