#!/usr/bin/env bash
# NFE-vs-quality sweeps on the shipped checkpoints (issue: benchmark sweeps, headline (b) and (c)).
# A subset of solvers and NFE <= 200 (plus the original sampler at NFE 1000) to fit a 2-core CPU:
# 256 samples per cell, seed 0. Resumable: re-running skips finished cells.
set -euo pipefail
cd "$(dirname "$0")/.."
SOLVERS=bfn,bfn-solver2,bfn-solver++2,bfn-solver++3,sde-bfn-solver++2
UNIFORM='{"name": "uniform", "schedule": "uniform", "solvers": ["bfn"]}'
for ckpt in digits-continuous text-discrete; do
  out="benchmarks/results/$ckpt"
  bfnsolvers sweep --checkpoint "$ckpt" --solvers "$SOLVERS" --nfe 5,10,20,50,100,200 --samples 256 --seed 0 \
    --batch-size 256 --threads 1 --extra-config "$UNIFORM" --out "$out" --no-progress
  bfnsolvers sweep --checkpoint "$ckpt" --solvers bfn --nfe 1000 --samples 256 --seed 0 \
    --batch-size 256 --threads 1 --extra-config "$UNIFORM" --out "$out" --no-progress
  bfnsolvers report "$out"
done
