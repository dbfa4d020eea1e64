#!/usr/bin/env bash
# steel-train on one CUDA GPU: the kernel parity tests on the GPU (Triton compiled, not interpreted; inductor),
# then the Table 2 benchmark. Installs nothing: uses the machine's python3 with torch (and triton / flash-attn
# where present). Results land in $OUT (default build/gpu_check):
#   env.txt  parity.log  table2.log  table2.json
# Sized for one H100: parity ~1 min, benchmark <= BENCH_BUDGET_S (default 300 s) plus the row in flight.
#   bash bench/gpu_check.sh                       # everything
#   SKIP_PARITY=1 bash bench/gpu_check.sh         # the benchmark only
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu_check}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
unset TRITON_INTERPRET

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  $PY - <<'PY'
import importlib, sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
for name in ("triton", "flash_attn"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:
        print(name, "missing:", type(exc).__name__)
PY
} 2>&1 | tee "$OUT/env.txt"

status=0
if [ -z "${SKIP_PARITY:-}" ]; then
  echo "== parity on cuda =="
  STEEL_TEST_DEVICE=cuda timeout "${PARITY_TIMEOUT:-240}" $PY -m pytest -q -p no:cacheprovider -o addopts="" \
      tests/steel_train/test_kernels.py tests/steel_train/test_model.py 2>&1 | tee "$OUT/parity.log"
  status=${PIPESTATUS[0]}
fi

echo "== Table 2 =="
timeout "${BENCH_TIMEOUT:-420}" $PY bench/train_table2.py --device cuda --steps "${STEPS:-10}" \
    --budget-s "${BENCH_BUDGET_S:-300}" --json "$OUT/table2.json" 2>&1 | tee "$OUT/table2.log"
bench=${PIPESTATUS[0]}
echo "parity exit $status, benchmark exit $bench"
exit $(( status != 0 ? status : bench ))
