#!/usr/bin/env bash
# Mixed load (issue 7), on SQLite and PostgreSQL. Per backend, on a fresh database, the
# release server is set up through the API and then driven by bench/load.py at a fixed rate
# (open loop) with a mix of staff work (day views, patient and pump reads, searches, the refill
# worklist, availability, bookings, fills) and public traffic (article pages and lists,
# appointment requests), for a warm-up and then a fixed time. Reported: requests, achieved
# throughput, p50/p99/p999 overall and per kind, errors by status, the generator's lag, and the
# server's RSS every 2 s with a growth verdict. Writes docs/performance.md (section "load")
# and exits non-zero when any backend had an error or growing memory, so it can gate.
#
# Usage: bench/load.sh [sqlite|postgres|both]
# Knobs: LOAD_SECONDS (measured, default 120), LOAD_RATE (requests/s, default 100),
#        LOAD_WARMUP (s, default 15), LOAD_WORKERS (generator threads, default 48),
#        LOAD_DOC=0 (do not write docs/performance.md), CLINIC_BIN (use this binary, no build).
# Needs python3 (3.9+, standard library only), psql for PostgreSQL.
source "$(dirname "$0")/lib.sh"

backends=${1:-both}
[ "$backends" = both ] && backends="sqlite postgres"
LOAD_SECONDS=${LOAD_SECONDS:-120}
LOAD_RATE=${LOAD_RATE:-100}
LOAD_WARMUP=${LOAD_WARMUP:-15}
LOAD_WORKERS=${LOAD_WORKERS:-48}
LOAD_DOC=${LOAD_DOC:-1}
need python3 "Debian: apt-get install python3"
[ -n "${CLINIC_BIN:-}" ] || (cd "$ROOT" && cargo build --release -q -p clinic-server)
# A clinic phone number, so the server has no start-up warning of its own: whatever it logs at
# WARN or above during the run is then about the run.
export CLINIC_PHONE="${CLINIC_PHONE:-+13125550100}"

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
status=0
port=19100
for backend in $backends; do
    port=$((port + 1))
    echo "$backend:"
    start_server "$backend" "$port"
    trap 'stop_server; rm -rf "$OUT"' EXIT
    rc=0
    python3 "$ROOT/bench/load.py" run "$BASE" "$TOKEN" "$SERVER_PID" "$OUT/$backend.json" \
        --seconds "$LOAD_SECONDS" --rate "$LOAD_RATE" --warmup "$LOAD_WARMUP" --workers "$LOAD_WORKERS" \
        --label "$backend" || rc=$?
    [ -s "$OUT/$backend.json" ] || { echo "bench: the load run on $backend produced no result" >&2; exit 1; }
    [ "$rc" -eq 0 ] || status=1
    # What the server logged at WARN and above (RUST_LOG=warn) during the whole run.
    logged=$(grep -c . "$WORKDIR/stderr" || true)
    echo "$logged" >"$OUT/$backend.logged"
    if [ "$logged" -gt 0 ]; then
        echo "  the server logged $logged lines at WARN or above; the first:"
        head -5 "$WORKDIR/stderr" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-300 | sed 's/^/    /'
    fi
    stop_server
    trap 'rm -rf "$OUT"' EXIT
done

if [ "$LOAD_DOC" != 0 ]; then
    section="$OUT/section.md"
    {
        echo "### Mixed load: results"
        echo
        echo "Measured by \`bench/load.sh\` (LOAD_RATE=$LOAD_RATE, LOAD_SECONDS=$LOAD_SECONDS, LOAD_WARMUP=$LOAD_WARMUP) on"
        echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d),"
        echo "release binary, generator (\`bench/load.py\`, $LOAD_WORKERS threads) on the same machine."
        echo "Server CPU is its user + system time over the run's wall time (100 % = one core)."
        echo
        files=() logged=()
        for b in $backends; do files+=("$OUT/$b.json"); logged+=(--logged "$b=$(cat "$OUT/$b.logged")"); done
        python3 "$ROOT/bench/load.py" report "${files[@]}" "${logged[@]}"
    } >"$section"
    write_section load "$section"
    cat "$section"
fi
[ "$status" -eq 0 ] && echo "load: pass" || echo "load: FAIL (errors or growing memory; see above)"
exit "$status"
