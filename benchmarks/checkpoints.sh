#!/usr/bin/env bash
# NFE-vs-quality sweeps on the shipped checkpoints (issue: benchmark sweeps, headline (b) and (c)).
# A subset of solvers and NFE <= 200 (plus the original sampler at NFE 1000) to fit a 2-core CPU:
# 256 samples per cell, seed 0. Resumable: re-running skips finished cells.
set -euo pipefail
cd "$(dirname "$0")/.."
# The text checkpoint gets the original sampler only (re-run for the 8000-step checkpoint); the discrete
# solvers are compared on it at NFE 4-20 by `python -m benchmarks.beyond models`.
UNIFORM='{"name": "uniform", "schedule": "uniform", "solvers": ["bfn"]}'
for spec in "digits-continuous bfn,bfn-solver2,bfn-solver++2,bfn-solver++3,sde-bfn-solver++2" "text-discrete bfn"; do
  set -- $spec
  out="benchmarks/results/$1"
  bfnsolvers sweep --checkpoint "$1" --solvers "$2" --nfe 5,10,20,50,100,200 --samples 256 --seed 0 \
    --batch-size 256 --threads 1 --extra-config "$UNIFORM" --out "$out" --no-progress
  bfnsolvers sweep --checkpoint "$1" --solvers bfn --nfe 1000 --samples 256 --seed 0 \
    --batch-size 256 --threads 1 --out "$out" --no-progress
  bfnsolvers report "$out"
done
