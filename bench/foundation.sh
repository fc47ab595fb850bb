#!/usr/bin/env bash
# Foundation benchmark (issue 2): three levels in one run, on SQLite and on PostgreSQL —
#   /healthz                     no database
#   /readyz                      one trivial query through the pool
#   GET /api/v1/patients/{id}    the real read: token check, patient row, audit insert
# Target: the patient read at >= 50 % of /readyz throughput, p99 < 10 ms at 32 connections.
# Writes the results into docs/performance.md. Usage: bench/foundation.sh [sqlite|postgres|both]
source "$(dirname "$0")/lib.sh"

backends=${1:-both}
[ "$backends" = both ] && backends="sqlite postgres"
build_release
RESULTS=$(mktemp)
port=18500
for backend in $backends; do
    port=$((port + 1))
    start_server "$backend" "$port"
    trap stop_server EXIT
    id=$(curl -sf -X POST "$BASE/api/v1/patients" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d '{"given_name":"Bench","family_name":"Patient","email":"bench@example.org","phone":"+13125550100","date_of_birth":"1961-04-23","email_consent":true}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    echo "$backend:"
    run_wrk "$backend /healthz" "$BASE/healthz"
    run_wrk "$backend /readyz" "$BASE/readyz"
    run_wrk "$backend patient-read" "$BASE/api/v1/patients/$id" -H "Authorization: Bearer $TOKEN"
    echo "$backend rss $(rss_mb)" >>"$RESULTS"
    stop_server
    trap - EXIT
done

section=$(mktemp)
{
    echo "### Foundation: health, readiness and the patient read"
    echo
    echo "Measured by \`bench/foundation.sh\` on $(machine_note)."
    echo
    echo "| backend | level | req/s | p50 ms | p99 ms | errors |"
    echo "|---|---|---:|---:|---:|---:|"
    awk '$2 != "rss" {split($1 " " $2, a, " "); printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}' "$RESULTS"
    echo
    for backend in $backends; do
        awk -v b="$backend" '
            $1 == b && $2 == "/readyz" {ready = $3}
            $1 == b && $2 == "patient-read" {read = $3; p99 = $5}
            $1 == b && $2 == "rss" {rss = $3}
            END {
                ratio = ready > 0 ? 100 * read / ready : 0
                verdict = (ratio >= 50 && p99 < 10) ? "meets" : "MISSES"
                printf "- %s: patient read at %.0f %% of /readyz throughput, p99 %s ms (target >= 50 %%, < 10 ms): %s the target; server RSS after the run %s MiB.\n", b, ratio, p99, verdict, rss
            }' "$RESULTS"
    done
} >"$section"
write_section foundation "$section"
cat "$section"
