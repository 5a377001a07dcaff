#!/usr/bin/env bash
# The GPU sweep that chose lr/init_lr of configs/mnist_lenet_fixed_10.yaml (run once on a lent H200:
# 12 runs sharing one GPU, 330 s budget; needs mnist.npz in .devdata/). Writes tables to $OUT.
set -x
mkdir -p $OUT/runs
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.cuda.is_available())"
B=configs/mnist_lenet_fixed_10.yaml
COMMON="--data-dir .devdata --device cuda --outer_steps 15000 --decay_every 4000 --eval_every 1000 --checkpoint_every 5000"
python3 benchmarks/sweep.py --base $B --out $OUT/runs/sw1 --jobs 8 --budget 330 --set lr=0.01,0.03 --set init_lr=0.02,0.1 --set x_init=noise,real -- $COMMON > $OUT/runs/sw1.out 2>&1 &
python3 benchmarks/sweep.py --base $B --out $OUT/runs/sw2 --jobs 3 --budget 330 --set learn_labels=true,false --set batch_size=256 -- $COMMON --lr 0.03 --init_lr 0.1 > $OUT/runs/sw2.out 2>&1 &
python3 benchmarks/sweep.py --base $B --out $OUT/runs/sw3 --jobs 1 --budget 330 --set init_labels="0 1 2 3 4" -- $COMMON --lr 0.03 --init_lr 0.1 > $OUT/runs/sw3.out 2>&1 &
wait
cp $OUT/runs/sw1/sweep.md $OUT/sw1.md; cp $OUT/runs/sw1/sweep.json $OUT/sw1.json
cp $OUT/runs/sw2/sweep.md $OUT/sw2.md; cp $OUT/runs/sw2/sweep.json $OUT/sw2.json
cp $OUT/runs/sw3/sweep.md $OUT/sw3.md; cp $OUT/runs/sw3/sweep.json $OUT/sw3.json
for f in $OUT/runs/sw1/*.log; do tail -n 3 "$f"; done
