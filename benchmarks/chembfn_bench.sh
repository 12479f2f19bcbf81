#!/usr/bin/env bash
# The ChemBFN benchmark as run for benchmarks/results/chembfn/ (resumable processes on one checkpoint, CPU-sized:
# 600 samples per cell at the headline NFE 10 and ChemBFN's default 100 steps, 300 at NFE 5 / 20, 100 at NFE
# 50 / 100 for a subset of configs). The first plan (every config at NFE 50 / 100 with 150 / 100 samples) did not
# fit the CPU time left; A-D below are what ran (A with B, then C, D, E as cores freed).
# Usage: benchmarks/chembfn_bench.sh CHECKPOINT
set -euo pipefail
CKPT=${1:?checkpoint (ChemBFN model.pt)}
OUT=benchmarks/results/chembfn
CH="chem:BFN chem:ODE:0.5 chem:ODE:1.0"
OURS="sde-bfn-solver2-s sde-bfn-solver2-s+ns0.5 bfn-unipc3-t bfn-unipc3-t+T0.7 sde-bfn-unipc3-t sde-bfn-unipc3-t+ns0.5"
SEL="chem:BFN chem:ODE:0.5 chem:ODE:1.0 sde-bfn-solver2-s+ns0.5 sde-bfn-unipc3-t+ns0.5 bfn-unipc3-t+T0.7"
B="python benchmarks/chembfn_bench.py --ckpt $CKPT --out $OUT --fcd-ref 10000 --batch 100"
$B --nfe 10 --configs $CH $OURS bfn-mode chembfn-ode:0.5 --n 600 > $OUT.A.log 2>&1 &
$B --nfe 5 20 --configs $CH $OURS --n 300 > $OUT.B.log 2>&1 &
$B --nfe --chem-steps 100 --configs chem:ODE:0.5 --n 600 > $OUT.C.log 2>&1 &
wait
$B --nfe 50 --configs $SEL --n 100 > $OUT.D.log 2>&1 &
$B --nfe 100 --configs $SEL --n 100 > $OUT.E.log 2>&1 &
wait
# post hoc (chosen after seeing the results above): a stronger noise cut at NFE 10
$B --nfe 10 --configs sde-bfn-unipc3-t+ns0.25 --n 600 > $OUT.F.log 2>&1 &
$B --nfe 10 --configs sde-bfn-solver2-s+ns0.25 --n 600 > $OUT.G.log 2>&1 &
wait
python benchmarks/chembfn_bench.py --out $OUT --report
