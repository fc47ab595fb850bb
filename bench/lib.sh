#!/usr/bin/env bash
# Shared helpers for the benchmarks: build, start a `clinic serve` on SQLite or PostgreSQL,
# run wrk against a URL and parse its numbers, and write a section of docs/performance.md.
# Sourced by the bench/*.sh scripts; needs wrk (Debian: apt-get install wrk), curl, psql for
# PostgreSQL runs, python3 for writing the results.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CLINIC_BIN:-$ROOT/target/release/clinic}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BENCH_DURATION="${BENCH_DURATION:-10s}"
BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-32}"
BENCH_THREADS="${BENCH_THREADS:-2}"

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench: '$1' is required ($2)" >&2; exit 1; }; }

build_release() {
    need wrk "Debian: apt-get install wrk"
    need curl "Debian: apt-get install curl"
    [ -n "${CLINIC_BIN:-}" ] || (cd "$ROOT" && cargo build --release -q -p clinic-server)
}

# start_server BACKEND PORT → sets SERVER_PID, TOKEN, BASE, WORKDIR, PG_DB
start_server() {
    local backend=$1 port=$2
    WORKDIR=$(mktemp -d)
    PG_DB=""
    local url="$WORKDIR/clinic.db"
    if [ "$backend" = postgres ]; then
        need psql "Debian: apt-get install postgresql-client"
        PG_DB="clinic_bench_$(date +%s)_$$"
        psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB"
        url="${PG_ADMIN_URL%/*}/$PG_DB"
    fi
    BASE="http://127.0.0.1:$port"
    DATABASE_URL="$url" CLINIC_DATA_DIR="$WORKDIR" CLINIC_BIND="127.0.0.1:$port" RUST_LOG=warn \
        CLINIC_DB_POOL_SIZE="${CLINIC_DB_POOL_SIZE:-16}" "$BIN" serve >"$WORKDIR/stdout" 2>"$WORKDIR/stderr" &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        grep -q "Listening on" "$WORKDIR/stdout" 2>/dev/null && break
        sleep 0.1
    done
    TOKEN=$(grep -Eo 'clinic_[0-9a-f]{64}' "$WORKDIR/stdout" | head -1)
    [ -n "$TOKEN" ] || { echo "bench: server did not start"; cat "$WORKDIR/stderr"; exit 1; }
}

stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    if [ -n "$PG_DB" ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" || true; fi
    rm -rf "$WORKDIR"
}

# rss_mb: resident memory of the server now, in MiB
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$SERVER_PID/status"; }

# to_ms VALUE: wrk prints 850.00us, 1.20ms or 1.01s
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.2f", n
    }'
}

# run_wrk NAME URL [extra wrk args…] → appends "NAME rps p50 p99 errors" to $RESULTS
run_wrk() {
    local name=$1 url=$2; shift 2
    local out
    out=$(wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_DURATION" --latency "$@" "$url")
    local rps p50 p99 errors non2xx
    rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
    p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
    p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
    errors=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10; found=1} END {if (!found) print 0}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5; found=1} END {if (!found) print 0}')
    echo "$name $rps $p50 $p99 $((errors + non2xx))" >>"$RESULTS"
    printf '  %-28s %8s req/s  p50 %7s ms  p99 %7s ms  errors %s\n' "$name" "$rps" "$p50" "$p99" "$((errors + non2xx))"
}

machine_note() {
    echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d); load generator (wrk, $BENCH_THREADS threads, $BENCH_CONNECTIONS connections, $BENCH_DURATION per level) on the same machine"
}

# write_section MARKER FILE: replaces <!-- MARKER:begin --> … <!-- MARKER:end --> in
# docs/performance.md with FILE's content (appends the block when absent).
write_section() {
    python3 - "$ROOT/docs/performance.md" "$1" "$2" <<'PY'
import sys, pathlib
doc, marker, body = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3]).read_text()
begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
text = doc.read_text() if doc.exists() else "# Performance\n"
block = f"{begin}\n{body.rstrip()}\n{end}"
if begin in text and end in text:
    head, rest = text.split(begin, 1)
    text = head + block + rest.split(end, 1)[1]
else:
    text = text.rstrip() + "\n\n" + block + "\n"
doc.write_text(text)
PY
}

# wrk_keep URL [extra wrk args…]: runs wrk like run_wrk does and keeps its whole output in
# $WRK_OUTPUT (for scripts whose -s Lua prints its own counts in done()); records nothing.
wrk_keep() {
    local url=$1; shift
    WRK_OUTPUT=$(wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$BENCH_DURATION" --latency "$@" "$url")
}

# wrk_stats: wrk --latency output on stdin → "rps p50 p99 errors", parsed as run_wrk does
# (errors = socket errors + non-2xx responses).
wrk_stats() {
    local out rps p50 p99 errors non2xx
    out=$(cat)
    rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
    p50=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
    p99=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
    errors=$(echo "$out" | awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10; found=1} END {if (!found) print 0}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5; found=1} END {if (!found) print 0}')
    echo "$rps $p50 $p99 $((errors + non2xx))"
}
