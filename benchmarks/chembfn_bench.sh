#!/usr/bin/env bash
# The ChemBFN benchmark as run for benchmarks/results/chembfn/ on the label-conditioned checkpoint
# (checkpoints/chembfn-moses*.{pt,json}), in stages; each stage is one resumable process with one thread, and
# two stages run side by side on the 2-core machine (the order and sample sizes are what the CPU allowed: see
# the report's notes).  Seeds: 100 = tuning (the sharpening knobs are chosen there), 0 = report (every table
# but the tuning one).
# Usage: benchmarks/chembfn_bench.sh STAGE      (BEST="cfg1 cfg2 ..." for head / curves / guided)
set -euo pipefail
STAGE=${1:?stage: prune ref tune head bfn100 curves guided guided100 fill nll report}
OUT=${OUT:-benchmarks/results/chembfn}
CK=${CK:-checkpoints/chembfn-moses.pt}
MLP=${MLP:-checkpoints/chembfn-moses-mlp.pt}
LAB=${LAB:-checkpoints/chembfn-moses-labels.json}
B="python benchmarks/chembfn_bench.py --ckpt $CK --mlp $MLP --labels $LAB --out $OUT --fcd-ref 10000 --batch 100"
# the sharpening grid at NFE 10: noise scale, temperature, grid, and ChemBFN's ODE:T (our port) at lower T
GRID="sde-bfn-unipc3-t sde-bfn-unipc3-t+ns0.5 sde-bfn-unipc3-t+ns0.25 sde-bfn-unipc3-t+ns0.1 sde-bfn-unipc3-t+ns0
 sde-bfn-solver2-s+ns0.25 sde-bfn-solver2-s+ns0.1 sde-bfn-unipc3-t+ns0.25+T0.7 sde-bfn-unipc3-t+ns0.1+T0.7
 sde-bfn-unipc3-t+ns0.25+Slogsnr sde-bfn-unipc3-t+ns0.25+Squadratic bfn-unipc3-t+T0.5 bfn-unipc3-t+T0.3 bfn+T0.5
 chembfn-ode:0.5 chembfn-ode:0.25 chembfn-ode:0.1 bfn-mode"
case $STAGE in
  # pruning the grid on a training snapshot (not the shipped checkpoint; OUT, CK, MLP, LAB point at it)
  prune)  $B --nfe 10 --configs $GRID --n 150 --seeds 100 ;;
  # ChemBFN's default: ODE:0.5 at 100 steps (NFE 101)
  ref)    $B --nfe --chem-steps 100 --configs chem:ODE:0.5 --n ${N_REF:-1000} --seeds 0 ;;
  # the tuning seed on the shipped checkpoint: the grid's survivors (TUNE) and the unsharpened baselines
  tune)   $B --nfe 10 --configs ${TUNE:?TUNE} --n ${N_TUNE:-300} --seeds 100 ;;
  # the headline NFE 10 on the report seed
  head)   $B --nfe 10 --configs chem:ODE:0.5 ${BEST:?BEST} --n ${N_HEAD:-2000} --seeds 0 ;;
  bfn100) $B --nfe --chem-steps 100 --configs chem:BFN --n ${N_BFN:-300} --seeds 0 ;;
  curves) $B --nfe ${NFE_C:-5 20 50} --configs ${CC:-chem:ODE:0.5 chem:BFN ${BEST:?BEST}} --n ${N_CURVE:-200} --seeds 0 ;;
  # guided generation of the top QED class (2) at guidance WS (0 = the label alone; 4 = ChemBFN's default)
  guided) G=""
          for c in chem:ODE:0.5 ${BEST:?BEST}; do
            for w in ${WS:-0 2 4}; do if [ "$w" = 0 ]; then G="$G $c+c2"; else G="$G $c+c2+w$w"; fi; done
          done
          $B --nfe ${NFE_G:-5 10 20} --configs $G --n ${N_G:-200} --seeds 0 ;;
  guided100) $B --nfe --chem-steps 100 --configs ${G100:-chem:ODE:0.5+c2 chem:ODE:0.5+c2+w2 chem:ODE:0.5+c2+w4} \
             --n ${N_G100:-100} --seeds 0 ;;
  # the curves' missing cells (issue #16), most informative first: the report's three configurations at NFE
  # 50, ChemBFN's ODE at a second temperature (1.0: no sharpening of the re-noising) and BFN at NFE 10 / 50,
  # then NFE 100 (ChemBFN: 100 steps = NFE 101); stored token ids (samples/*.tokens.pt) for the NLL
  fill)   $B --nfe 50 --configs sde-bfn-solver2-s+ns0.1 sde-bfn-unipc3-t+ns0.25+T0.7 --n ${N_FILL:-500} --seeds 0
          $B --nfe 5 10 20 50 --configs chem:ODE:1.0 chem:BFN --n ${N_FILL:-500} --seeds 0
          $B --nfe 50 --configs sde-bfn-unipc3-t+ns0 --n ${N_FILL:-500} --seeds 0
          $B --nfe 100 --configs sde-bfn-solver2-s+ns0.1 sde-bfn-unipc3-t+ns0.25+T0.7 --n ${N_FILL:-500} --seeds 0
          $B --nfe --chem-steps 100 --configs chem:ODE:1.0 --n ${N_FILL:-500} --seeds 0
          $B --nfe 100 --configs sde-bfn-unipc3-t+ns0 --n ${N_FILL:-500} --seeds 0 ;;
  # the checkpoint's NLL (negative ELBO) of the first 200 samples of every report-seed cell and of MOSES test
  nll)    python benchmarks/chembfn_nll.py --ckpt $CK --mlp $MLP --out $OUT --n ${N_NLL:-200} --repeats 4 ;;
  report) python benchmarks/chembfn_bench.py --out $OUT --report ;;
  *) echo "unknown stage $STAGE" >&2; exit 2 ;;
esac
