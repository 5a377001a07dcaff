#!/usr/bin/env bash
# The text reproduction rows on one lent CUDA GPU, all at once, in about 3 minutes.
#
#   bash benchmarks/gpu_text.sh OUT_DIR [DATA_DIR]        (or: make gpu-text OUT=OUT_DIR)
#
# 1. `pytest -m gpu tests/test_text.py`: double backward through every text model works on CUDA
#    and gives the CPU's float64 hypergradient (stops here if not).
# 2. Every row of benchmarks/reproduce_text.py, plus TREC-6 and SST-5 variants, each in its own
#    process, in parallel: the recurrent rows are bound by per-op launch overhead, not by the GPU, so they
#    share it well. Each row times 5 outer steps, then runs as many outer steps as fit BUDGET
#    seconds (the table says how many), evaluates beside the random-real baseline, and trains the
#    same model on the full training data.
# 3. OUT_DIR/text_gpu.md: the table of all runs; OUT_DIR/runs/<row>/: the run folders (without
#    checkpoints); OUT_DIR/logs/: one log per process.
#
# DATA_DIR needs text/{trec6,sst5,imdb}/{train,test}.tsv (or .tsv.gz) and embeddings/glove*.txt;
# `make text-devdata` writes such a folder (.devdata, 28 MB with IMDB gzipped) to carry along.
# Python: .venv/bin/python if present, else python3 with src/ on PYTHONPATH.
set -euo pipefail
OUT=${1:?usage: gpu_text.sh OUT_DIR [DATA_DIR]}
DATA=${2:-${DATA:-.devdata}}
BUDGET=${BUDGET:-70}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu ROWS=... EXTRA=--smoke: a quick check of this script on a CPU
ROWS=${ROWS:-trec6_bilstm_fixed_6 trec6_bilstm_fixed_120 sst5_birnn_fixed_5 sst5_birnn_fixed_100 \
imdb_textconvnet_fixed_20 imdb_textconvnet_random_20}
VARIANTS=${VARIANTS:-1}
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=${PY:-.venv/bin/python}; else PY=${PY:-python3}; fi
mkdir -p "$OUT/logs"
export OMP_NUM_THREADS=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export SOFTDISTILL_CACHE=${SOFTDISTILL_CACHE:-/tmp/softdistill-cache}
start=$(date +%s)
nvidia-smi -L 2>/dev/null || true
if "$PY" -c "import pytest" 2>/dev/null; then
  "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_text.py 2>&1 | tee "$OUT/logs/pytest_gpu.log"
else
  echo "pytest is not installed here: skipping the CUDA hypergradient check" | tee "$OUT/logs/pytest_gpu.log"
fi
run() {  # run NAME ARGS...: one reproduce_text.py process in the background
  local name=$1; shift
  "$PY" benchmarks/reproduce_text.py --device "$DEVICE" --data-dir "$DATA" --runs "$OUT/runs" \
    --budget "$BUDGET" --table "$OUT/logs/$name.md" ${EXTRA:-} "$@" > "$OUT/logs/$name.log" 2>&1 &
}
for row in $ROWS; do
  run "$row" --rows "$row"
done
if [ "$VARIANTS" = 1 ]; then  # TREC-6 variants: larger outer lr; + 4x real batch; T = 3
  run trec6_lr0.1 --rows trec6_bilstm_fixed_6 --set lr=0.1 --tag lr0.1
  run trec6_b1024 --rows trec6_bilstm_fixed_6 --set lr=0.1 --set batch_size=1024 --tag lr0.1-b1024
  run trec6_T3 --rows trec6_bilstm_fixed_6 --set n_epochs=3 --set hypergrad=autograd --tag T3
  # SST-5: the CPU run (init_lr 0.3, lr 0.05) stayed near the class prior; smaller steps
  run sst5_small --rows sst5_birnn_fixed_5 --set init_lr=0.05 --set lr=0.01 --tag init0.05-lr0.01
fi
fail=0
for job in $(jobs -p); do wait "$job" || fail=1; done
"$PY" benchmarks/reproduce_text.py --all-runs --device "$DEVICE" --data-dir "$DATA" --runs "$OUT/runs" \
  --table "$OUT/text_gpu.md" > "$OUT/logs/table.log" 2>&1 || fail=1
# resumable state, and IMDB's x_syn snapshots (~25 x 3 MB per run): keeps what comes back small
rm -rf "$OUT"/runs/*/checkpoints "$OUT"/runs/imdb*/snapshots
echo "wall $(( $(date +%s) - start )) s; table: $OUT/text_gpu.md"
tail -n 3 "$OUT"/logs/*.log | cut -c1-300
exit $fail
