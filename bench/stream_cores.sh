#!/usr/bin/env bash
# The token-stream targets on a machine with many cores (the lent GPU host has 16): 1 client >= 50 % of the
# in-process read, 8 clients >= 2x one client. bench/stream.py with one server process per 2 cores (8 on 16).
# Results land in $OUT (default build/stream_cores): env.txt stream.log stream.json
#   bash bench/stream_cores.sh
#   PY=.venv/bin/python SERVER_WORKERS=8 REPEAT=5 bash bench/stream_cores.sh
# Needs, in $PY: numpy, orjson, xxhash, pydantic, fastapi, uvicorn, uvloop, httptools (the `api` extra; no torch).
# The script stops at once, naming what is missing, rather than measuring a slower stand-in.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/stream_cores}
PY=${PY:-python3}
CORES=$(nproc)
SERVER_WORKERS=${SERVER_WORKERS:-$(( CORES / 2 > 1 ? CORES / 2 : 1 ))}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
{
  echo "cores $CORES, server workers $SERVER_WORKERS, load $(cut -d' ' -f1-3 /proc/loadavg)"
  $PY - <<'PY'
import importlib, sys
missing = []
for name in ("numpy", "orjson", "xxhash", "pydantic", "fastapi", "uvicorn", "uvloop", "httptools"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except ImportError:
        missing.append(name)
print("python", sys.version.split()[0])
if missing:
    sys.exit("missing: " + " ".join(missing) + " (the api extra: pip install -e '.[api]')")
PY
} 2>&1 | tee "$OUT/env.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 2
timeout "${STREAM_TIMEOUT:-420}" $PY bench/stream.py --server-workers "$SERVER_WORKERS" --repeat "${REPEAT:-5}" \
    --request-cost 500 --json "$OUT/stream.json" 2>&1 | tee "$OUT/stream.log"
exit "${PIPESTATUS[0]}"
