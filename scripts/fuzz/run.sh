#!/usr/bin/env bash
# Spec-driven fuzzing with Schemathesis (issue 7, item 1): starts the release binary on a fresh
# SQLite database (seeded), runs every operation with all checks and a fixed seed, first with
# the admin token, then without a token. Not yet part of .ci/run: the open findings in
# FINDINGS.md (mostly "valid request rejected" because the spec is looser than the server)
# must reach zero first.
#   bash scripts/fuzz/run.sh [max-seconds-per-run]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MAX_TIME=${1:-300}
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
(cd "$ROOT" && cargo build --release -q -p clinic-server)
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q "schemathesis==4.32.5"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CLINIC_DATA_DIR="$WORK/data" CLINIC_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
    "$ROOT/target/release/clinic" serve --no-scheduler >"$WORK/server.out" 2>"$WORK/server.err" &
PID=$!
for _ in $(seq 1 100); do grep -q "Listening on" "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
TOKEN=$(grep -m1 '^ *clinic_' "$WORK/server.out" | tr -d ' ')
SPEC="http://127.0.0.1:$PORT/api-docs/openapi.json"
status=0
# revoke_token is left out: its links would revoke the token the run uses.
"$WORK/venv/bin/st" run "$SPEC" -H "Authorization: Bearer $TOKEN" --checks all --seed 42 \
    --max-examples 40 --max-time "$MAX_TIME" -w 2 --exclude-operation-id revoke_token \
    --generation-database none --no-color || status=1
"$WORK/venv/bin/st" run "$SPEC" --checks all --seed 42 --max-examples 15 --max-time "$MAX_TIME" -w 2 \
    --generation-database none --no-color || status=1
if grep -q "panicked" "$WORK/server.err"; then
    echo "the server panicked:" >&2
    cat "$WORK/server.err" >&2
    status=1
fi
exit $status
