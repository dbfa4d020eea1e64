#!/usr/bin/env bash
# From raw documents to a training run, on tiny data, on a CPU (about a minute):
#   sample -> steel run (clean) -> steel tokenize (shards) -> steel serve (HTTP) -> steel-train (streams over HTTP)
#
#   examples/end_to_end.sh [WORK_DIR]        (run from the repository root; WORK_DIR defaults to a fresh temp dir)
#
# Knobs (environment): PYTHON (default .venv/bin/python), STEPS (6), SEQ_LEN (64), DATASET (sample).
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
STEPS=${STEPS:-6}
SEQ_LEN=${SEQ_LEN:-64}
DATASET=${DATASET:-sample}
WORK=${1:-$(mktemp -d "${TMPDIR:-/tmp}/steel-e2e.XXXXXX")}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

SAMPLE=$WORK/sample          # raw input + the tiny perplexity model
CLEAN=$WORK/clean            # `steel run` output
ROOT=$WORK/root              # the server's data root; it serves ROOT/datasets/NAME
SHARDS=$ROOT/datasets/$DATASET
RUN=$WORK/run                # steel-train run folder: metrics.jsonl, checkpoints/, config.toml
SERVE_LOG=$WORK/serve.log
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

SERVER_PID=
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT

rm -rf "$RUN"   # a fresh run each time (a run folder with a checkpoint would resume instead)

echo "== 1/5 sample: raw documents -> $SAMPLE"
"$PYTHON" -m steel_data.sample "$SAMPLE" >/dev/null

echo "== 2/5 steel run recipes/steel-text.yaml -> $CLEAN"
"$PYTHON" -m steel_data.cli run recipes/steel-text.yaml -i "$SAMPLE/input" -o "$CLEAN" --workers 1 --no-progress \
    --overwrite --set "perplexity_filter.model_dir=$SAMPLE/models"

echo "== 3/5 steel tokenize (seq_len $SEQ_LEN) -> $SHARDS"
"$PYTHON" -m steel_data.cli tokenize -i "$CLEAN" -o "$SHARDS" --seq-len "$SEQ_LEN" --workers 1 --no-progress --overwrite
VOCAB=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["vocab_size"])' "$SHARDS/manifest.json")

PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
echo "== 4/5 steel serve --data-root $ROOT on $URL (log: $SERVE_LOG)"
"$PYTHON" -m steel_data.cli serve --host 127.0.0.1 --port "$PORT" --data-root "$ROOT" --log-level warning \
    >"$SERVE_LOG" 2>&1 &
SERVER_PID=$!
"$PYTHON" - "$URL/healthz" "$SERVER_PID" <<'PY'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("steel serve exited before it answered /healthz")
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit(f"steel serve did not answer {url} within 60 s")
PY
echo "dataset: $URL/v1/datasets/$DATASET"

echo "== 5/5 steel-train (debug flavor, $STEPS steps) streaming from $URL/v1/datasets/$DATASET -> $RUN"
# the debug flavor's 512-row embedding is too small for the Qwen vocabulary: size it from the manifest
"$PYTHON" -m steel_train.cli --config steel_train/configs/debug.toml --data "$URL/v1/datasets/$DATASET" \
    --run-dir "$RUN" --steps "$STEPS" --device cpu --set "model.vocab_size=$VOCAB" --set train.log_every=1 \
    --set "train.checkpoint_every=$STEPS" --set optim.warmup_steps=2

cleanup
SERVER_PID=

echo
echo "outputs:"
echo "  raw sample:     $SAMPLE/input"
echo "  cleaned data:   $CLEAN/data   (stats: $CLEAN/stats.json)"
echo "  token shards:   $SHARDS   (manifest: $SHARDS/manifest.json)"
echo "  server log:     $SERVE_LOG"
echo "  training run:   $RUN   (metrics: $RUN/metrics.jsonl, checkpoints: $RUN/checkpoints)"
