#!/usr/bin/env bash
# A/B comparison of two `clinic` binaries on the foundation levels (/readyz and the patient
# read), run alternately so that drift of a shared machine hits both alike.
#   bench/ab.sh BIN_A BIN_B [ROUNDS=3]      e.g. copies of target/release/clinic before and after
#   AB_BACKEND=postgres bench/ab.sh …        on a fresh PostgreSQL database (PG_ADMIN_URL)
# Prints one line per run; nothing is written to docs/. Needs wrk, curl, python3.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
need wrk "Debian: apt-get install wrk"
A=$(realpath "$1") B=$(realpath "$2") ROUNDS=${3:-3}
SECS=${BENCH_SECONDS:-6}

one() { # BIN PORT
    CLINIC_BIN=$1 BIN=$1 start_server "${AB_BACKEND:-sqlite}" "$2"
    trap stop_server EXIT
    local id
    id=$(curl -sf -X POST "$BASE/api/v1/patients" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
        -d '{"given_name":"Bench","family_name":"Patient","email":"bench@example.org","phone":"+13125550100","date_of_birth":"1961-04-23","email_consent":true}' |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    local out ready ready99 read read99
    out=$(wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${SECS}s" --latency "$BASE/readyz")
    ready=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    ready99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    out=$(wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"${SECS}s" --latency -H "Authorization: Bearer $TOKEN" \
        "$BASE/api/v1/patients/$id")
    read=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    read99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    printf '%s  readyz %8.0f/s p99 %8s ms  patient-read %8.0f/s p99 %8s ms  (%2.0f %%)\n' \
        "$3" "$ready" "$ready99" "$read" "$read99" "$(echo "100 * $read / $ready" | bc -l)"
    stop_server
    trap - EXIT
}

for round in $(seq 1 "$ROUNDS"); do
    one "$A" 18710 "A"
    one "$B" 18711 "B"
done
