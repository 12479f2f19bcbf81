#!/usr/bin/env bash
# The device checks of the issue "The hot loop on any device", in one run that fits 5 minutes of device time
# (every step under `timeout`; a step that fails or times out is recorded and the script goes on):
#   1. the CUDA-aware tests: tests/test_device_clean.py (its CUDA test runs every solver loop under
#      torch.cuda.set_sync_debug_mode("error")), tests/test_kernels.py (Triton kernels on CUDA), tests/test_sample_api.py;
#   2. the kernel benchmark (benchmarks/kernels.py: bandwidth as a fraction of the measured device copy bandwidth,
#      time vs eager torch and vs torch.compile);
#   3. the sampler overhead (benchmarks/overhead.py --networks): library vs hand loop with a zero-cost network, and
#      sample() vs the bare network for CIFAR-10 UNetVDM and text8 GPT at their published sizes (random weights)
#      at batch 1, 16, 64;
# and writes benchmarks/results/gpu.md (device name first).
#
#   bash benchmarks/gpu.sh                      # on a CUDA machine
#   bash benchmarks/gpu.sh --device cpu --quick # smoke run on CPU: tiny networks, batches 1,2, no kernel benchmark
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda QUICK=0 OUT=benchmarks/results/gpu.md ARGS="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
TMP=$(mktemp -d)
status() { if [ "$1" -eq 0 ]; then echo ok; elif [ "$1" -eq 124 ]; then echo "timed out"; else echo "failed (rc $1)"; fi; }

if [ "$DEVICE" = cuda ]; then
  NAME=$(python -c "import torch; print(torch.cuda.get_device_name(0))" 2>/dev/null || echo "CUDA not available")
  TESTS="tests/test_device_clean.py tests/test_kernels.py tests/test_sample_api.py"; T_TESTS=90
  BATCHES=1,16,64; T_OVER=90; QUICKFLAG=""
else
  NAME="cpu ($(python -c 'import platform; print(platform.processor() or platform.machine())'))"
  TESTS="tests/test_device_clean.py"; T_TESTS=60
  BATCHES=1,16,64; T_OVER=240; QUICKFLAG=""
fi
if [ "$QUICK" = 1 ]; then BATCHES=1,2; T_OVER=60; QUICKFLAG="--quick"; fi

echo "== 1. tests ($TESTS)"
timeout "$T_TESTS" python -m pytest -q -p no:cacheprovider $TESTS > "$TMP/tests.log" 2>&1; RC_TESTS=$?
tail -3 "$TMP/tests.log"

echo "== 2. kernel benchmark"
if [ "$QUICK" = 1 ]; then
  RC_KERN=skipped
else
  timeout 120 python benchmarks/kernels.py --device "$DEVICE" --out "$TMP/kernels.md" > "$TMP/kernels.log" 2>&1
  RC_KERN=$(status $?)
fi
echo "$RC_KERN"

echo "== 3. overhead"
timeout "$T_OVER" python benchmarks/overhead.py --device "$DEVICE" --networks --batches "$BATCHES" $QUICKFLAG \
  --out "$TMP/overhead.md" > "$TMP/overhead.log" 2>&1; RC_OVER=$?
tail -3 "$TMP/overhead.log"

{
  echo "# Device checks: $NAME"
  echo
  echo "Command: \`bash benchmarks/gpu.sh $ARGS\` (device $DEVICE$([ "$QUICK" = 1 ] && echo ', --quick: a smoke run, not a measurement')); $(python -c 'import torch; print("torch", torch.__version__)')"
  echo
  echo "## 1. Tests: $(status $RC_TESTS)"
  echo
  echo '```'
  tail -15 "$TMP/tests.log"
  echo '```'
  echo
  echo "## 2. Kernel benchmark: $RC_KERN"
  echo
  if [ -f "$TMP/kernels.md" ]; then sed 's/^#/##/' "$TMP/kernels.md"; else echo '```'; tail -15 "$TMP/kernels.log" 2>/dev/null; echo '```'; fi
  echo
  echo "## 3. Sampler overhead: $(status $RC_OVER)"
  echo
  if [ -f "$TMP/overhead.md" ]; then sed 's/^#/##/' "$TMP/overhead.md"; else echo '```'; tail -15 "$TMP/overhead.log"; echo '```'; fi
} > "$OUT"
echo "wrote $OUT"
rm -rf "$TMP"
[ "$RC_TESTS" -eq 0 ] && [ "$RC_OVER" -eq 0 ]
