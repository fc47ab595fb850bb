#!/usr/bin/env bash
# Scheduling benchmark (issue 4), on SQLite and PostgreSQL. Per backend, on a fresh database:
#   seed through the HTTP API (bench/seed_appointments.py): 5 providers working every day
#   07:00–19:00 America/Chicago, 50 patients, 20,000 appointments over the next 600 days;
#   availability for one provider over 90 days (consultation, a window where every day
#   holds appointments) at 1 connection (unloaded latency), then at 16 next to GET /readyz;
#   at 32 connections: GET /readyz, and bookings of distinct free slots (bench/booking.lua).
# Target: availability p50 < 5 ms and p99 < 20 ms at 16 connections; booking throughput
# recorded on both databases. Writes the results into docs/performance.md.
# Usage: bench/scheduling.sh [sqlite|postgres|both]   (SEED_APPOINTMENTS overrides 20000)
source "$(dirname "$0")/lib.sh"

backends=${1:-both}
[ "$backends" = both ] && backends="sqlite postgres"
seed_n=${SEED_APPOINTMENTS:-20000}
build_release
RESULTS=$(mktemp)
port=18700
for backend in $backends; do
    port=$((port + 1))
    start_server "$backend" "$port"
    trap stop_server EXIT
    echo "$backend:"
    python3 "$ROOT/bench/seed_appointments.py" "$BASE" "$TOKEN" "$WORKDIR" --appointments "$seed_n"
    seed() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORKDIR/seed.json" "$1"; }
    provider=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["providers"][0])' "$WORKDIR/seed.json")
    count_sql="SELECT count(*) FROM appointments WHERE status IN ('booked', 'checked_in')"
    if [ "$backend" = postgres ]; then
        stored() { psql "${PG_ADMIN_URL%/*}/$PG_DB" -tAc "$count_sql"; }
    else
        stored() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$WORKDIR/clinic.db" "$count_sql"; }
    fi
    seeded=$(stored)
    [ "$seeded" -eq "$seed_n" ] || { echo "bench: $seeded appointments stored, expected $seed_n" >&2; exit 1; }
    avail="$BASE/api/v1/availability?provider_id=$provider&appointment_type=consultation&from=$(seed availability_from)&to=$(seed availability_to)"
    slots=$(curl -sf "$avail" -H "Authorization: Bearer $TOKEN" |
        python3 -c 'import json,sys; print(sum(len(p["slots"]) for p in json.load(sys.stdin)["items"]))')
    echo "$backend seed $seeded $(seed seconds) $(seed bookings_per_second) $slots" >>"$RESULTS"

    BENCH_THREADS=1 BENCH_CONNECTIONS=1 run_wrk "$backend 1 availability-90d" "$avail" -H "Authorization: Bearer $TOKEN"
    BENCH_CONNECTIONS=16 run_wrk "$backend 16 /readyz" "$BASE/readyz"
    BENCH_CONNECTIONS=16 run_wrk "$backend 16 availability-90d" "$avail" -H "Authorization: Bearer $TOKEN"
    BENCH_CONNECTIONS=32 run_wrk "$backend 32 /readyz" "$BASE/readyz"
    BOOK_SLOTS="$WORKDIR/slots.txt" BOOK_THREADS="$BENCH_THREADS" TOKEN="$TOKEN" BENCH_CONNECTIONS=32 \
        wrk_keep "$BASE/api/v1/appointments" -s "$ROOT/bench/booking.lua"
    read -r _ p50 p99 _ <<<"$(wrk_stats <<<"$WRK_OUTPUT")"
    counts=$(echo "$WRK_OUTPUT" | grep '^BOOKINGS ') || { echo "bench: no booking counts from wrk" >&2; echo "$WRK_OUTPUT" >&2; exit 1; }
    eval "$(echo "$counts" | cut -d' ' -f2-)"   # created= conflicts= other= exhausted= seconds=
    bps=$(awk -v c="$created" -v s="$seconds" 'BEGIN {printf "%.0f", c / s}')
    after=$(stored)
    echo "$backend 32 booking $bps $p50 $p99 $((conflicts + other))" >>"$RESULTS"
    echo "$backend booked $created $conflicts $other $exhausted $((after - seeded))" >>"$RESULTS"
    printf '  %-28s %8s book/s p50 %7s ms  p99 %7s ms  non-201 %s (409: %s, exhausted slots: %s); stored %s more\n' \
        "$backend booking" "$bps" "$p50" "$p99" "$((conflicts + other))" "$conflicts" "$exhausted" "$((after - seeded))"
    echo "$backend rss $(rss_mb)" >>"$RESULTS"
    stop_server
    trap - EXIT
done

section=$(mktemp)
{
    echo "### Scheduling: availability and booking"
    echo
    echo "Measured by \`bench/scheduling.sh\` on $(BENCH_CONNECTIONS="16 or 32" machine_note)."
    echo "Each backend starts empty and is seeded through the API: 5 providers working every day"
    echo "07:00–19:00 America/Chicago, 50 patients, $seed_n appointments over the next 600 days"
    echo "(mornings; up to 7 a provider a day). Availability: one provider, \`consultation\`, 90 days"
    echo "starting 10 days out. Booking: every request a distinct free \`follow_up\` afternoon slot,"
    echo "interleaved over the 5 providers; req/s counts 201s only, errors are the non-201 answers;"
    echo "\"stored\" also counts the bookings still in flight when wrk stopped."
    echo
    echo "| backend | level | connections | req/s | p50 ms | p99 ms | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    awk '$2 ~ /^[0-9]+$/ {printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $3, $2, $4, $5, $6, $7}' "$RESULTS"
    echo
    for backend in $backends; do
        awk -v b="$backend" '
            $1 == b && $2 == "seed" {seeded = $3; secs = $4; seed_rate = $5; slots = $6}
            $1 == b && $2 == "1" && $3 == "availability-90d" {p50_1 = $5}
            $1 == b && $2 == "16" && $3 == "availability-90d" {rps = $4; p50 = $5; p99 = $6}
            $1 == b && $2 == "32" && $3 == "/readyz" {ready = $4}
            $1 == b && $3 == "booking" {book = $4}
            $1 == b && $2 == "booked" {created = $3; conflicts = $4; other = $5; stored = $7}
            $1 == b && $2 == "rss" {rss = $3}
            END {
                verdict = (p50 < 5 && p99 < 20) ? "meets" : "MISSES"
                printf "- %s availability: p50 %s ms, p99 %s ms at 16 connections (target < 5 ms, < 20 ms): %s the target. The answer holds %s slots; p50 %s ms with one connection; at 16, p50 is about 16 / throughput, so < 5 ms needs about 3,200 answers/s (measured %s).\n", b, p50, p99, verdict, slots, p50_1, rps
                printf "- %s booking: %s bookings/s at 32 clients (%.0f %% of /readyz at 32), %s booked, %s answered 409, %s other non-201, %s stored; ", b, book, (ready > 0 ? 100 * book / ready : 0), created, conflicts, other, stored
                printf "seeding %s appointments took %s s (%s/s, 32 clients). Server RSS after the run %s MiB.\n", seeded, secs, seed_rate, rss
            }' "$RESULTS"
    done
} >"$section"
write_section scheduling "$section"
cat "$section"
