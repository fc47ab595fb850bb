#!/usr/bin/env bash
# Integrator check: a client generated from docs/openapi.json works.
#
#   bash scripts/generated_client/run.sh
#
# 1. Makes a Python venv (or reuses $GC_VENV) and installs requirements.txt, a hashed lock of
#    every package and dependency (--require-hashes --no-deps; made from requirements.in).
# 2. Generates a client from the OpenAPI document with openapi-python-client (config.yaml).
#    A document that does not parse, a generator warning (an operation or a response it
#    left out) or an operation without a generated function is a failure.
# 3. Installs the client into the venv and starts `clinic serve --no-scheduler` on a fresh
#    SQLite data dir and a free port, with the admin token it prints on first start.
# 4. Runs scenario.py against it, then stops the server.
#
# Needs python3 (3.11+), network to PyPI and the clinic binary: target/release/clinic, else
# target/debug/clinic (as `cargo test` leaves it), else a release build made here. The binary
# must serve the same document as docs/openapi.json (a stale one fails).
# Settings: GC_VENV (a venv to create or reuse), GC_SPEC (another document, e.g. a candidate
# before it is committed), CLINIC_BIN (another binary), GC_KEEP=1 (keep the work dir).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SPEC="${GC_SPEC:-$ROOT/docs/openapi.json}"
if [ -n "${CLINIC_BIN:-}" ]; then
    BIN="$CLINIC_BIN"
elif [ -x "$ROOT/target/release/clinic" ] || [ ! -x "$ROOT/target/debug/clinic" ]; then
    BIN="$ROOT/target/release/clinic"
else
    BIN="$ROOT/target/debug/clinic"
fi

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/generated-client.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "${GC_KEEP:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

[ -f "$SPEC" ] || fail "no OpenAPI document at $SPEC"

step "Python venv"
VENV="${GC_VENV:-$WORK/venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "python 3.11+ needed, found " + sys.version' \
    || fail "the generated client needs Python 3.11 or newer"
# Every package, dependencies included, is pinned by version and SHA-256 in the lock: pip refuses
# any other file, and --no-deps installs nothing that is not in it.
"$PY" -m pip install -q --disable-pip-version-check --require-hashes --no-deps \
    -r "$HERE/requirements.txt"
# The generator's post hooks (ruff) are looked up on PATH.
export PATH="$VENV/bin:$PATH"
echo "$("$VENV/bin/openapi-python-client" --version 2>/dev/null || echo openapi-python-client) in $VENV"

step "Generate the client from ${SPEC#"$ROOT"/}"
GEN="$WORK/client"
set +e
COLUMNS=200 "$VENV/bin/openapi-python-client" generate \
    --path "$SPEC" --output-path "$GEN" --overwrite --meta setup \
    --config "$HERE/config.yaml" >"$WORK/generate.log" 2>&1
gen_rc=$?
set -e
cat "$WORK/generate.log"
if [ "$gen_rc" -ne 0 ]; then
    "$PY" "$HERE/check_generated.py" --explain "$SPEC" || true
    fail "openapi-python-client could not generate a client from ${SPEC#"$ROOT"/} (exit $gen_rc; see above)"
fi
if grep -Eiq 'warning|could not|cannot|unable to|omitted|skipping|will be ignored' "$WORK/generate.log"; then
    grep -Ein 'warning|could not|cannot|unable to|omitted|skipping|will be ignored' "$WORK/generate.log" >&2
    fail "the generator reported warnings: some operations or responses are missing from the client"
fi
"$PY" "$HERE/check_generated.py" "$SPEC" "$GEN/clinic_client" \
    || fail "the generated client does not cover every operation of the document"

step "Install the generated client"
# A separate install, without hashes: the client is a local directory just generated, which
# has no hash to pin and which --require-hashes would refuse. Nothing is fetched for it:
# --no-deps (its runtime dependencies are the ones pinned in requirements.txt),
# --no-build-isolation (its setup.py builds with the setuptools pinned there, not with a
# setuptools and wheel pip would otherwise download unpinned) and --no-index.
"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --no-index \
    "$GEN"
"$PY" -c 'import clinic_client, sys; print("clinic_client from", clinic_client.__file__)'

step "Start the server"
if [ ! -x "$BIN" ]; then
    echo "$BIN is missing; building it"
    (cd "$ROOT" && cargo build --release -q -p clinic-server)
fi
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
DATA="$WORK/data"
LOG="$WORK/server.log"
mkdir -p "$DATA"
# A clean environment: nothing from the caller's CLINIC_*, DATABASE_URL or CLINIC_CONFIG.
env -i PATH="/usr/bin:/bin" HOME="$WORK" \
    CLINIC_DATA_DIR="$DATA" CLINIC_BIND="127.0.0.1:$PORT" CLINIC_TIME_ZONE="America/Chicago" \
    "$BIN" serve --no-scheduler >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 300); do
    grep -q 'Listening on' "$LOG" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOG" >&2; fail "the server exited before listening"; }
    sleep 0.2
done
grep -q 'Listening on' "$LOG" || { cat "$LOG" >&2; fail "the server did not start listening within 60 s"; }
TOKEN="$(grep -Eo 'clinic_[0-9a-f]{64}' "$LOG" | head -n 1 || true)"
[ -n "$TOKEN" ] || { cat "$LOG" >&2; fail "no admin token in the server's first-start output"; }
echo "$BIN (pid $SERVER_PID) on 127.0.0.1:$PORT, data in $DATA"
# A binary older than the document would test something else: it must serve the same one.
"$PY" - "http://127.0.0.1:$PORT/api-docs/openapi.json" "$SPEC" "${GC_SPEC:-}" <<'PY' || fail "$BIN serves another OpenAPI document than ${SPEC#"$ROOT"/}: rebuild it (cargo build --release -p clinic-server)"
import json, sys, urllib.request
served = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
if served == json.load(open(sys.argv[2], encoding="utf-8")):
    print("the server serves the same OpenAPI document")
elif sys.argv[3]:
    print("note: GC_SPEC differs from the document the server serves")
else:
    sys.exit(1)
PY

step "Scenario"
set +e
"$PY" "$HERE/scenario.py" --base-url "http://127.0.0.1:$PORT" --token "$TOKEN"
scenario_rc=$?
set -e
if [ "$scenario_rc" -ne 0 ]; then
    echo "--- server log (last 40 lines)" >&2
    tail -n 40 "$LOG" >&2
    fail "the scenario failed (exit $scenario_rc)"
fi

step "Stop the server"
kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
echo "generated client check passed"
