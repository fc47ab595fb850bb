#!/usr/bin/env bash
# Spec-driven fuzzing with Schemathesis (issue 7, item 1), run by .ci/run: starts the release
# binary on a fresh SQLite database (seeded content), runs every operation with every default
# check (all of Schemathesis's checks but the response-time limit) and a fixed seed, first with the admin token, then without a token (every protected operation
# must refuse). Any failure fails the script. Settings: scripts/fuzz/schemathesis.toml (checks
# are not named on the command line, which would override its per-operation settings).
# Schemathesis and every dependency are installed from requirements.txt, a lock pinned by version
# and SHA-256 (made from requirements.in; --require-hashes --no-deps installs nothing else).
#   bash scripts/fuzz/run.sh [max-seconds-per-run]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MAX_TIME=${1:-300}
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
(cd "$ROOT" && cargo build --release -q -p clinic-server)
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --require-hashes --no-deps -r "$ROOT/scripts/fuzz/requirements.txt"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
CLINIC_DATA_DIR="$WORK/data" CLINIC_BIND="127.0.0.1:$PORT" RUST_LOG=warn \
    "$ROOT/target/release/clinic" serve --no-scheduler >"$WORK/server.out" 2>"$WORK/server.err" &
PID=$!
for _ in $(seq 1 100); do grep -q "Listening on" "$WORK/server.out" 2>/dev/null && break; sleep 0.1; done
TOKEN=$(grep -m1 '^ *clinic_' "$WORK/server.out" | tr -d ' ')
SPEC="http://127.0.0.1:$PORT/api-docs/openapi.json"
status=0
# revoke_token is left out: its links would revoke the token the run uses.
ST=("$WORK/venv/bin/st" --config-file "$ROOT/scripts/fuzz/schemathesis.toml")
"${ST[@]}" run "$SPEC" -H "Authorization: Bearer $TOKEN" --seed 42 \
    --max-examples 40 --max-time "$MAX_TIME" -w 2 --exclude-operation-id revoke_token \
    --generation-database none --no-color || status=1
"${ST[@]}" run "$SPEC" --seed 42 --max-examples 15 --max-time "$MAX_TIME" -w 2 \
    --generation-database none --no-color || status=1
if grep -q "panicked" "$WORK/server.err"; then
    echo "the server panicked:" >&2
    cat "$WORK/server.err" >&2
    status=1
fi
# For information (a 500 already fails the run above): internal errors are logged with their
# cause, never request data; actix also logs the fuzzer's malformed headers here.
if grep -q "ERROR" "$WORK/server.err"; then
    echo "errors the server logged during the run:" >&2
    grep "ERROR" "$WORK/server.err" | head -20 >&2
fi
echo "fuzz: $( [ $status = 0 ] && echo passed || echo FAILED )"
exit $status
