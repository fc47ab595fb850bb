#!/usr/bin/env bash
# Fault tests (issue 7, item 4): the real `clinic` binary survives and recovers, with nothing
# lost, when
#   pg_restart       PostgreSQL stops under load and comes back (twice: `pg_ctl -m fast`, then
#                    `-m immediate`, a crash with WAL recovery), on a PRIVATE cluster;
#   smtp_down        the SMTP relay is down for a while (emails wait, then all go out once);
#   sigkill_sqlite   `clinic serve` is killed with SIGKILL in the middle of sending, on SQLite;
#   sigkill_postgres the same on the private PostgreSQL cluster;
#   lease_two_instances  two instances on the private PostgreSQL, no fault but a reminder run
#                    longer than the lease: nothing may be sent twice.
# Each scenario prints "CHECK <scenario>:<check> PASS|FAIL <numbers>" lines and a verdict;
# the script exits 1 if any check failed. docs/reliability.md explains and records the runs.
#
# Usage: bench/faults.sh [SCENARIO…]            (default: all five, about 15 minutes)
#
# Needs: a release binary (cargo build --release -p clinic-server; or CLINIC_BIN=path),
# python3 (3.11, stdlib only), and for the PostgreSQL scenarios the server binaries
# (initdb, pg_ctl; PG_BIN, default /usr/lib/postgresql/15/bin) and psql. The PostgreSQL
# scenarios never touch a shared server: they initdb a throw-away cluster in a temp folder,
# on a free port with its own socket folder, stop and start only that one, and delete it.
# As root, that cluster runs as the `postgres` OS user (initdb refuses root).
#
# Settings (environment): CLINIC_BIN, PG_BIN, FAULTS_OUT (folder for logs and results,
# default a new temp folder, kept), FAULTS_KEEP_PG=1 (keep the cluster's folder),
# OUTAGE_SECONDS (10), SMTP_EMAILS (20), SMTP_DOWN_FAILURES (2), KILL_EMAILS (300),
# KILL_SINK_DELAY (0.25 s per message), LONG_EMAILS (400), LONG_SINK_DELAY (1.0 s per
# message), LEASE_SECONDS (30), SERVER_LOG (RUST_LOG of the servers, warn,clinic_reminders=info).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${CLINIC_BIN:-$ROOT/target/release/clinic}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
OUT="${FAULTS_OUT:-$(mktemp -d /tmp/clinic-faults.XXXXXX)}"
DRIVER="$ROOT/bench/faults_driver.py"
SINK="$ROOT/bench/faults_smtp.py"
OUTAGE_SECONDS="${OUTAGE_SECONDS:-10}"
SMTP_EMAILS="${SMTP_EMAILS:-20}"
SMTP_DOWN_FAILURES="${SMTP_DOWN_FAILURES:-2}"
KILL_EMAILS="${KILL_EMAILS:-300}"
KILL_SINK_DELAY="${KILL_SINK_DELAY:-0.25}"
LEASE_SECONDS="${LEASE_SECONDS:-30}"
# The dispatcher's batch (DispatchOptions::default().batch, crates/reminders/src/dispatcher.rs):
# the most a crash may repeat.
BATCH=100
SERVER_LOG="${SERVER_LOG:-warn,clinic_reminders=info}"

mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: >"$RESULTS"
PG_DIR=""
EXTRA_ENV=()

need() { command -v "$1" >/dev/null 2>&1 || { echo "faults: '$1' is required ($2)" >&2; exit 1; }; }
need python3 "Debian: apt-get install python3"
[ -x "$BIN" ] || { echo "faults: no binary at $BIN (cargo build --release -p clinic-server, or set CLINIC_BIN)" >&2; exit 1; }

log() { echo "$(date -u +%H:%M:%S) $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# verdict SCENARIO STATUS DETAIL: one line in the results.
verdict() {
    echo "CHECK $1 $2 $3"
    echo "$1 $2 $3" >>"$RESULTS"
}

cleanup() {
    # Only this shell's own background jobs still running (servers, sinks): never a PID that
    # may have been reused since.
    local pid
    for pid in $(jobs -p); do kill -KILL "$pid" 2>/dev/null || true; done
    if [ -n "$PG_DIR" ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
        [ "${FAULTS_KEEP_PG:-0}" = 1 ] || rm -rf "$PG_DIR"
    fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

# ---- the private PostgreSQL cluster --------------------------------------------------------

PG_AS=""
as_pg() { if [ -n "$PG_AS" ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_private_init() {
    [ -n "$PG_DIR" ] && return 0
    need psql "Debian: apt-get install postgresql-client"
    [ -x "$PG_BIN/initdb" ] || { echo "faults: no initdb in $PG_BIN (set PG_BIN)" >&2; exit 1; }
    [ "$(id -u)" = 0 ] && PG_AS=postgres
    PG_DIR=$(mktemp -d /tmp/clinic-faults-pg.XXXXXX)
    chmod 755 "$PG_DIR"
    [ -n "$PG_AS" ] && chown postgres: "$PG_DIR"
    PG_PORT=$(free_port)
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >"$OUT/initdb.log" 2>&1
    cat >>"$PG_DIR/data/postgresql.conf" <<CONF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
CONF
    PG_START="${PG_AS:+runuser -u postgres -- }$PG_BIN/pg_ctl -D $PG_DIR/data -l $PG_DIR/postgres.log -w start"
    PG_STOP_FAST="${PG_AS:+runuser -u postgres -- }$PG_BIN/pg_ctl -D $PG_DIR/data -m fast -w stop"
    PG_STOP_IMMEDIATE="${PG_AS:+runuser -u postgres -- }$PG_BIN/pg_ctl -D $PG_DIR/data -m immediate -w stop"
    sh -c "$PG_START" >/dev/null
    log "private PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (data $PG_DIR/data)"
}

pg_database() { # NAME → prints its URL
    psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -c "CREATE DATABASE $1" >/dev/null
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}

# ---- clinic serve ---------------------------------------------------------------------------

# start_clinic NAME DATABASE_URL DATA_DIR [serve args…] → SERVER_PID, BASE (TOKEN on a first
# start). Extra environment in EXTRA_ENV (VAR=value…). Logs: $OUT/NAME.out, $OUT/NAME.err.
start_clinic() {
    local name=$1 url=$2 data=$3; shift 3
    local port
    port=$(free_port)
    mkdir -p "$data"
    env -i PATH="$PATH" DATABASE_URL="$url" CLINIC_DATA_DIR="$data" CLINIC_BIND="127.0.0.1:$port" \
        RUST_LOG="$SERVER_LOG" CLINIC_REMINDER_LEASE_SECONDS="$LEASE_SECONDS" CLINIC_PHONE="+1 312 555 0100" \
        "${EXTRA_ENV[@]}" "$BIN" serve "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        grep -q "Listening on" "$OUT/$name.out" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "faults: $name exited at start:"; cat "$OUT/$name.err"; exit 1; }
        sleep 0.1
    done
    grep -q "Listening on" "$OUT/$name.out" || { echo "faults: $name did not start"; exit 1; }
    BASE="http://127.0.0.1:$port"
    local t
    t=$(grep -Eo 'clinic_[0-9a-f]{64}' "$OUT/$name.out" | head -1 || true)
    if [ -n "$t" ]; then TOKEN=$t; fi
}

# stop_clinic PID: SIGTERM, wait → STOP_RC, the exit status (not in $(…): the server is a
# child of this shell, not of a subshell).
stop_clinic() {
    kill -TERM "$1" 2>/dev/null || true
    STOP_RC=0
    wait "$1" 2>/dev/null || STOP_RC=$?
}

# start_sink PORT LOG [DELAY] → SINK_PID
start_sink() {
    python3 "$SINK" "$1" "$2" --delay "${3:-0}" >"$2.out" 2>&1 &
    SINK_PID=$!
    for _ in $(seq 1 50); do grep -q listening "$2.out" 2>/dev/null && return 0; sleep 0.1; done
    echo "faults: the SMTP sink did not start"; cat "$2.out"; exit 1
}

sink_total() { python3 "$DRIVER" sink-count "$1" | awk '{print $1}'; }
sink_distinct() { python3 "$DRIVER" sink-count "$1" | awk '{print $2}'; }

# wait_sink LOG COUNT TIMEOUT: until the sink holds COUNT distinct Message-IDs.
wait_sink() {
    local deadline=$((SECONDS + $3))
    while [ "$(sink_distinct "$1")" -lt "$2" ]; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 1
    done
}

# wait_sink_quiet LOG SECONDS: until the sink has received nothing for SECONDS (at most 120 s),
# so that a sender still busy with repeats is counted too.
wait_sink_quiet() {
    local last=-1 same_since=$SECONDS deadline=$((SECONDS + 120)) n
    while [ $SECONDS -lt $deadline ]; do
        n=$(sink_total "$1")
        if [ "$n" != "$last" ]; then last=$n; same_since=$SECONDS; fi
        [ $((SECONDS - same_since)) -ge "$2" ] && return 0
        sleep 1
    done
}

# seed_emails NAME URL DATA N: books N appointments on a server without scheduler (so N
# confirmations are due and nothing sends them yet), then stops it. Sets TOKEN.
seed_emails() {
    local name=$1 url=$2 data=$3 n=$4
    EXTRA_ENV=()
    start_clinic "$name-seed" "$url" "$data" --no-scheduler
    python3 "$DRIVER" seed "$BASE" "$TOKEN" "$n"
    stop_clinic "$SERVER_PID"
    [ "$STOP_RC" = 0 ] || { echo "faults: the seeding server exited with $STOP_RC on SIGTERM"; exit 1; }
}

# ---- scenarios ------------------------------------------------------------------------------

scenario_pg_restart() {
    log "== pg_restart: PostgreSQL stopped for ${OUTAGE_SECONDS} s under load, twice (fast, immediate)"
    pg_private_init
    local url data="$OUT/pg_restart" ok=PASS
    url=$(pg_database faults_restart)
    EXTRA_ENV=()
    start_clinic pg_restart "$url" "$data"
    local pid=$SERVER_PID
    for mode in fast immediate; do
        local stop_cmd=$PG_STOP_FAST
        [ $mode = immediate ] && stop_cmd=$PG_STOP_IMMEDIATE
        python3 "$DRIVER" outage "$BASE" "$TOKEN" "$OUT/pg_restart_$mode.json" --label "pg_restart:$mode" \
            --stop "$stop_cmd" --start "$PG_START" --down "$OUTAGE_SECONDS" \
            --stop-at-second $((60 - OUTAGE_SECONDS / 2 - 2)) | tee "$OUT/pg_restart_$mode.txt" || ok=FAIL
        grep "^CHECK " "$OUT/pg_restart_$mode.txt" | sed 's/^CHECK //' >>"$RESULTS"
    done
    # The scheduler's ticks inside the outages failed; it must send again: one booking now,
    # its confirmation (an .eml file: no CLINIC_SMTP_URL here) sent by the next tick.
    local t0=$SECONDS
    if python3 "$DRIVER" seed "$BASE" "$TOKEN" 1 >/dev/null && python3 "$DRIVER" wait-idle "$BASE" "$TOKEN" --timeout 90 >/dev/null \
        && python3 "$DRIVER" outbox "$BASE" "$TOKEN" "$OUT/pg_restart_outbox.json" --kind appointment_confirmation | grep -q '"states": {"sent": 1}'; then
        verdict pg_restart:scheduler_resumed PASS "a confirmation booked after the outages was sent $((SECONDS - t0)) s later ($(ls "$data/outbox" | grep -c '\.eml$') .eml file)"
    else
        verdict pg_restart:scheduler_resumed FAIL "a confirmation booked after the outages was not sent within 90 s"
        ok=FAIL
    fi
    local alive=PASS
    kill -0 "$pid" 2>/dev/null || alive=FAIL
    local panics warn503 runfail
    panics=$(grep -c "panicked" "$OUT/pg_restart.err" || true)
    warn503=$(grep -c "database unavailable" "$OUT/pg_restart.err" || true)
    runfail=$(grep -c "reminders: run failed" "$OUT/pg_restart.err" || true)
    [ "$panics" = 0 ] || alive=FAIL
    verdict pg_restart:process_survived "$alive" "pid $pid still running after both outages; $panics panics in its log; $warn503 'database unavailable' warnings, $runfail failed reminder runs logged"
    [ $alive = PASS ] || ok=FAIL
    stop_clinic "$pid"
    [ "$STOP_RC" = 0 ] || ok=FAIL
    verdict pg_restart:clean_shutdown "$([ "$STOP_RC" = 0 ] && echo PASS || echo FAIL)" "SIGTERM afterwards: exit status $STOP_RC"
    log "pg_restart: $ok"
}

scenario_smtp_down() {
    local backend=sqlite
    log "== smtp_down: the relay refuses connections for $SMTP_DOWN_FAILURES attempts, then comes back ($SMTP_EMAILS emails, $backend)"
    local data="$OUT/smtp_down" ok=PASS
    local url="sqlite://$data/clinic.db"
    seed_emails smtp_down "$url" "$data" "$SMTP_EMAILS"
    local sport
    sport=$(free_port) # nothing listens there: connection refused
    EXTRA_ENV=("CLINIC_SMTP_URL=smtp://127.0.0.1:$sport?tls=none")
    start_clinic smtp_down "$url" "$data"
    local pid=$SERVER_PID t0=$SECONDS
    log "smtp_down: relay 127.0.0.1:$sport down; waiting for $SMTP_DOWN_FAILURES failed attempts per email"
    if python3 "$DRIVER" wait-attempts "$BASE" "$TOKEN" --min "$SMTP_DOWN_FAILURES" --timeout $((120 * SMTP_DOWN_FAILURES + 60)) >"$OUT/smtp_down_waiting.json"; then
        verdict smtp_down:emails_wait "PASS" "after $((SECONDS - t0)) s with the relay down: $(cat "$OUT/smtp_down_waiting.json"); status $(python3 "$DRIVER" status "$BASE" "$TOKEN")"
    else
        verdict smtp_down:emails_wait "FAIL" "rows did not stay pending while the relay was down"
        ok=FAIL
    fi
    start_sink "$sport" "$OUT/smtp_down_sink.jsonl"
    local t1=$SECONDS
    log "smtp_down: relay up again"
    if wait_sink "$OUT/smtp_down_sink.jsonl" "$SMTP_EMAILS" 400 && python3 "$DRIVER" wait-idle "$BASE" "$TOKEN" --timeout 60 >/dev/null; then
        verdict smtp_down:all_sent_after_return PASS "$SMTP_EMAILS emails at the relay $((SECONDS - t1)) s after it came back"
    else
        verdict smtp_down:all_sent_after_return FAIL "only $(sink_distinct "$OUT/smtp_down_sink.jsonl") of $SMTP_EMAILS emails at the relay after $((SECONDS - t1)) s"
        ok=FAIL
    fi
    python3 "$DRIVER" outbox "$BASE" "$TOKEN" "$OUT/smtp_down_outbox.json" --kind appointment_confirmation >/dev/null
    python3 "$DRIVER" verify-delivery "$OUT/smtp_down_sink.jsonl" "$OUT/smtp_down_outbox.json" --label smtp_down \
        --expected "$SMTP_EMAILS" --max-duplicates 0 --expected-attempts $((SMTP_DOWN_FAILURES + 1)) | tee "$OUT/smtp_down.txt" || ok=FAIL
    grep "^CHECK " "$OUT/smtp_down.txt" | sed 's/^CHECK //' >>"$RESULTS"
    local st
    st=$(python3 "$DRIVER" status "$BASE" "$TOKEN")
    if echo "$st" | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if (s["failed"], s["stalled"], s["expired_leases"]) == (0, False, 0) else 1)'; then
        verdict smtp_down:status_clean PASS "$st"
    else
        verdict smtp_down:status_clean FAIL "$st"; ok=FAIL
    fi
    stop_clinic "$pid"
    [ "$STOP_RC" = 0 ] || ok=FAIL
    kill "$SINK_PID" 2>/dev/null || true
    log "smtp_down: $ok"
}

# scenario_sigkill BACKEND
scenario_sigkill() {
    local backend=$1 name="sigkill_$1" ok=PASS
    log "== $name: SIGKILL mid-dispatch of $KILL_EMAILS emails (relay ${KILL_SINK_DELAY} s a message, lease ${LEASE_SECONDS} s)"
    local data="$OUT/$name" url
    if [ "$backend" = postgres ]; then
        pg_private_init
        url=$(pg_database faults_sigkill)
    else
        url="sqlite://$data/clinic.db"
    fi
    seed_emails "$name" "$url" "$data" "$KILL_EMAILS"
    local sport sinklog="$OUT/${name}_sink.jsonl"
    sport=$(free_port)
    start_sink "$sport" "$sinklog" "$KILL_SINK_DELAY"
    EXTRA_ENV=("CLINIC_SMTP_URL=smtp://127.0.0.1:$sport?tls=none")
    start_clinic "$name-1" "$url" "$data"
    local pid=$SERVER_PID kill_at=$((KILL_EMAILS / 2))
    log "$name: waiting for the scheduler's tick and $kill_at emails at the relay"
    local deadline=$((SECONDS + 150))
    while [ "$(sink_total "$sinklog")" -lt "$kill_at" ]; do
        [ $SECONDS -ge $deadline ] && { verdict "$name:killed_mid_dispatch" FAIL "the relay got $(sink_total "$sinklog") emails in 150 s"; return 1; }
        sleep 0.2
    done
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    local at_kill
    at_kill=$(sink_total "$sinklog")
    sleep $(python3 -c "print($KILL_SINK_DELAY + 1)")
    local after_kill
    after_kill=$(sink_total "$sinklog")
    if [ "$after_kill" -gt 0 ] && [ "$after_kill" -lt "$KILL_EMAILS" ]; then
        verdict "$name:killed_mid_dispatch" PASS "SIGKILL with $at_kill of $KILL_EMAILS emails at the relay ($after_kill once the relay finished the messages in flight)"
    else
        verdict "$name:killed_mid_dispatch" FAIL "the relay had $after_kill of $KILL_EMAILS emails at the kill"
        ok=FAIL
    fi
    local restart_t
    restart_t=$(now)
    start_clinic "$name-2" "$url" "$data"
    pid=$SERVER_PID
    log "$name: restarted; outbox after the crash: $(python3 "$DRIVER" status "$BASE" "$TOKEN")"
    local t1=$SECONDS
    if wait_sink "$sinklog" "$KILL_EMAILS" 300 && python3 "$DRIVER" wait-idle "$BASE" "$TOKEN" --timeout 60 >/dev/null; then
        verdict "$name:all_sent_after_restart" PASS "all $KILL_EMAILS distinct emails at the relay $((SECONDS - t1)) s after the restart"
    else
        verdict "$name:all_sent_after_restart" FAIL "$(sink_distinct "$sinklog") of $KILL_EMAILS distinct emails at the relay $((SECONDS - t1)) s after the restart"
        ok=FAIL
    fi
    wait_sink_quiet "$sinklog" 5
    python3 "$DRIVER" outbox "$BASE" "$TOKEN" "$OUT/${name}_outbox.json" --kind appointment_confirmation >/dev/null
    python3 "$DRIVER" verify-delivery "$sinklog" "$OUT/${name}_outbox.json" --label "$name" \
        --expected "$KILL_EMAILS" --max-duplicates "$BATCH" --restart-time "$restart_t" | tee "$OUT/$name.txt" || ok=FAIL
    grep "^CHECK " "$OUT/$name.txt" | sed 's/^CHECK //' >>"$RESULTS"
    local st
    st=$(python3 "$DRIVER" status "$BASE" "$TOKEN")
    if echo "$st" | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if (s["failed"], s["sending"], s["expired_leases"]) == (0, 0, 0) else 1)'; then
        verdict "$name:status_clean" PASS "$st"
    else
        verdict "$name:status_clean" FAIL "$st"; ok=FAIL
    fi
    stop_clinic "$pid"
    [ "$STOP_RC" = 0 ] || ok=FAIL
    kill "$SINK_PID" 2>/dev/null || true
    log "$name: $ok"
}

# Two instances on one PostgreSQL, no crash: A's run is long (LONG_EMAILS emails to a relay
# taking LONG_SINK_DELAY s each, 4 at a time: over a minute); B starts during it and ticks
# while A still sends. Nothing may go out twice (docs/operations.md, "Several instances on
# PostgreSQL": "never send one email twice in normal operation").
scenario_lease_two_instances() {
    local name=lease_two_instances ok=PASS n=${LONG_EMAILS:-400} delay=${LONG_SINK_DELAY:-1.0}
    log "== $name: two instances, one run longer than the lease ($n emails, relay $delay s a message, lease $LEASE_SECONDS s)"
    pg_private_init
    local data="$OUT/$name" url
    url=$(pg_database faults_lease)
    seed_emails "$name" "$url" "$data" "$n"
    local sport sinklog="$OUT/${name}_sink.jsonl"
    sport=$(free_port)
    start_sink "$sport" "$sinklog" "$delay"
    EXTRA_ENV=("CLINIC_SMTP_URL=smtp://127.0.0.1:$sport?tls=none")
    start_clinic "$name-a" "$url" "$data/a"
    local pid_a=$SERVER_PID
    local deadline=$((SECONDS + 90))
    while [ "$(sink_total "$sinklog")" -lt 1 ]; do
        [ $SECONDS -ge $deadline ] && { verdict "$name:run_started" FAIL "instance A sent nothing in 90 s"; return 1; }
        sleep 0.5
    done
    start_clinic "$name-b" "$url" "$data/b"
    local pid_b=$SERVER_PID t1=$SECONDS
    log "$name: instance A is sending; instance B started"
    if wait_sink "$sinklog" "$n" 400 && python3 "$DRIVER" wait-idle "$BASE" "$TOKEN" --timeout 120 >/dev/null; then
        verdict "$name:all_sent" PASS "all $n distinct emails at the relay $((SECONDS - t1)) s after B started"
    else
        verdict "$name:all_sent" FAIL "$(sink_distinct "$sinklog") of $n distinct emails at the relay"
        ok=FAIL
    fi
    wait_sink_quiet "$sinklog" 10
    python3 "$DRIVER" outbox "$BASE" "$TOKEN" "$OUT/${name}_outbox.json" --kind appointment_confirmation >/dev/null
    python3 "$DRIVER" verify-delivery "$sinklog" "$OUT/${name}_outbox.json" --label "$name" \
        --expected "$n" --max-duplicates 0 | tee "$OUT/$name.txt" || ok=FAIL
    grep "^CHECK " "$OUT/$name.txt" | sed 's/^CHECK //' >>"$RESULTS"
    local runs_a runs_b
    runs_a=$(grep -c "reminders: run done" "$OUT/$name-a.err" || true)
    runs_b=$(grep -c "reminders: run done" "$OUT/$name-b.err" || true)
    log "$name: runs that sent: A $runs_a, B $runs_b"
    stop_clinic "$pid_b"
    stop_clinic "$pid_a"
    kill "$SINK_PID" 2>/dev/null || true
    log "$name: $ok"
}

# ---- main -----------------------------------------------------------------------------------

scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(pg_restart smtp_down sigkill_sqlite sigkill_postgres lease_two_instances)
log "fault tests: ${scenarios[*]}; binary $BIN; logs in $OUT; $(nproc) cores, $(uname -sr)"
for s in "${scenarios[@]}"; do
    case $s in
        pg_restart) scenario_pg_restart || true ;;
        smtp_down) scenario_smtp_down || true ;;
        sigkill_sqlite) scenario_sigkill sqlite || true ;;
        sigkill_postgres) scenario_sigkill postgres || true ;;
        lease_two_instances) scenario_lease_two_instances || true ;;
        *) echo "faults: unknown scenario '$s' (pg_restart smtp_down sigkill_sqlite sigkill_postgres lease_two_instances)" >&2; exit 2 ;;
    esac
done

echo
echo "Summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), results in $RESULTS):"
awk '{print "  " $2 "  " $1}' "$RESULTS"
if grep -q " FAIL " "$RESULTS"; then
    echo "FAIL: $(grep -c " FAIL " "$RESULTS") of $(wc -l <"$RESULTS") checks failed"
    exit 1
fi
echo "PASS: all $(wc -l <"$RESULTS") checks passed"
