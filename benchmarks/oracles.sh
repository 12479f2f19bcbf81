#!/usr/bin/env bash
# Headline oracle sweep: every registered solver except `reference` (and the original
# sampler `bfn` once more on its published uniform-in-t grid, config "uniform")
# x NFE {5, 10, 20, 50, 100, 200, 1000}, seed 0, on the three oracle problems.
# Samples per cell: 2000 (gmm, discretised), 1000 (markov: ~40 ms per NFE per 1000
# samples on one 2-core CPU thread, 2000 would take ~30 min on its own).
# Resumable: re-running skips finished cells. `bfnsolvers sweep` / `bfnsolvers report`
# are the same commands once the CLI is wired.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
NFE=5,10,20,50,100,200,1000
UNIFORM='{"name": "uniform", "schedule": "uniform", "solvers": ["bfn"]}'
for spec in "gmm 2000" "discretised 2000" "markov 1000"; do
  set -- $spec
  out="benchmarks/results/oracles-$1"
  python -m bfnsolvers sweep --checkpoint "oracle:$1" --solvers all --nfe "$NFE" --samples "$2" --seed 0 \
    --batch-size 1000 --threads 1 --extra-config "$UNIFORM" --out "$out" --allow-errors  # midpoint: error cells at even NFE
  python -m bfnsolvers report "$out"
done
