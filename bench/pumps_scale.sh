#!/usr/bin/env bash
# Pumps at scale (issue 5), on SQLite and PostgreSQL. Per backend:
#   1. start the release server on a fresh database (migrations, catalogues, admin token),
#      create one patient, pump, flex programme and fill through the HTTP API, stop it;
#   2. copy those rows in bulk with SQL (python3's sqlite3 module / psql generate_series):
#      PUMP_PATIENTS patients (default 10,000), PUMPS pumps (default 1,000,000; unique
#      serials, active, 300 overdue by 1–30 days, the rest due uniformly over the next 400
#      days, each stored forecast carrying its own due date) and one fill per pump;
#   3. restart the server on that database and measure the refill worklist: the bare SQL
#      query as the server issues it (plan, then median and max of 20 runs), and
#      GET /api/v1/worklists/refills?within_days=14&limit=100 (median and p95 of 20 curls);
#   4. time clinic_pumps::registry::recompute (crates/pumps/examples/recompute_bench.rs,
#      1000 calls, each in its own write transaction) on that big database and on a fresh one.
# Targets: the 14-day worklist under 50 ms on both databases with 1,000,000 pumps, using the
# stored indexed due date; one recompute under 1 ms. Writes docs/performance.md (section
# "pumps"). Usage: bench/pumps_scale.sh [sqlite|postgres|both]
source "$(dirname "$0")/lib.sh"

backends=${1:-both}
[ "$backends" = both ] && backends="sqlite postgres"
PUMPS=${PUMPS:-1000000}
PUMP_PATIENTS=${PUMP_PATIENTS:-10000}
OVERDUE=300
HORIZON=400
RUNS=20
RECOMPUTES=1000
HELPER="$ROOT/bench/pumps_scale.py"
RECOMPUTE_BIN="$ROOT/target/release/examples/recompute_bench"

build_release
(cd "$ROOT" && cargo build --release -q -p clinic-pumps --example recompute_bench)
RESULTS=$(mktemp)
PLANS=$(mktemp -d)
read -r TODAY UNTIL <<<"$(python3 "$HELPER" dates)"

# api METHOD PATH [JSON] → response body; fails unless 2xx
api() {
    curl -sf -X "$1" "$BASE$2" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' ${3:+-d "$3"}
}
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Stop the server but keep its database (lib.sh's stop_server also drops it).
halt_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

# Serve again on the same database; the admin token from the first start stays valid.
serve_again() {
    local port=$1
    DATABASE_URL="$DB_URL" CLINIC_DATA_DIR="$WORKDIR" CLINIC_BIND="127.0.0.1:$port" RUST_LOG=warn \
        CLINIC_DB_POOL_SIZE="${CLINIC_DB_POOL_SIZE:-16}" "$BIN" serve >"$WORKDIR/stdout2" 2>"$WORKDIR/stderr2" &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        grep -q "Listening on" "$WORKDIR/stdout2" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: server did not restart" >&2
    cat "$WORKDIR/stderr2" >&2
    exit 1
}

# recompute BACKEND WHERE URL: runs the example, records "BACKEND recompute WHERE KIND mean p50 p99 max"
recompute() {
    local out
    out=$("$RECOMPUTE_BIN" "$3" "$RECOMPUTES")
    echo "$out" | sed 's/^/    /'
    echo "$out" | awk -v b="$1" -v w="$2" '$1 == "RESULT" {
        for (i = 3; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        print b, "recompute", w, $2, v["mean_us"], v["p50_us"], v["p99_us"], v["max_us"]
    }' >>"$RESULTS"
}

seed_postgres() {
    psql "$DB_URL" -X -q -v ON_ERROR_STOP=1 -v tmpl="$1" -v pumps="$PUMPS" -v patients="$PUMP_PATIENTS" \
        -v overdue="$OVERDUE" -v horizon="$HORIZON" -v today="$TODAY" <<'SQL'
BEGIN;
SELECT setseed(0.20261128) \g /dev/null
INSERT INTO patients (id, given_name, family_name, email, phone, date_of_birth, time_zone,
        preferred_language, email_consent, notes, search_key, version, created_at, updated_at, archived_at)
    SELECT '01900000-0001-7000-8000-' || lpad(to_hex(g), 12, '0'), t.given_name,
        'Patient' || lpad(g::text, 5, '0'), 'bench' || lpad(g::text, 5, '0') || '@example.org',
        t.phone, t.date_of_birth, t.time_zone, t.preferred_language, t.email_consent, t.notes,
        'bench patient' || lpad(g::text, 5, '0') || ' bench' || lpad(g::text, 5, '0') || '@example.org',
        t.version, t.created_at, t.updated_at, t.archived_at
    FROM generate_series(0, :patients - 1) g,
        (SELECT * FROM patients WHERE id = (SELECT patient_id FROM pumps WHERE id = :'tmpl')) t;
CREATE TEMP TABLE due ON COMMIT DROP AS
    SELECT g, to_char(CASE WHEN g < :overdue THEN :'today'::date - (1 + floor(random() * 30))::int
                           ELSE :'today'::date + floor(random() * :horizon)::int END, 'YYYY-MM-DD') AS d
    FROM generate_series(0, :pumps - 1) g;
INSERT INTO pumps (id, patient_id, model_code, serial_number, implanted_on, reservoir_ml, alarm_ml,
        replacement_indicator_on, replacement_deadline, status, version, created_at, updated_at,
        due_date, due_binding, alarm_at, forecast, forecast_at)
    SELECT '01900000-0002-7000-8000-' || lpad(to_hex(g), 12, '0'),
        '01900000-0001-7000-8000-' || lpad(to_hex(g % :patients), 12, '0'),
        t.model_code, 'BENCH-' || lpad(g::text, 7, '0'), t.implanted_on, t.reservoir_ml, t.alarm_ml,
        t.replacement_indicator_on, t.replacement_deadline, t.status, t.version, t.created_at, t.updated_at,
        d, t.due_binding, t.alarm_at,
        replace(t.forecast, '"due_date":"' || t.due_date || '"', '"due_date":"' || d || '"'), t.forecast_at
    FROM due, (SELECT * FROM pumps WHERE id = :'tmpl') t;
INSERT INTO pump_fills (id, pump_id, filled_at, drug_code, concentration, concentration_unit, diluted,
        volume_ml, residual_ml, prime_ml, first_fill, stability_days, clinician, expected_residual_ml,
        discrepancy, recorded_by, created_at)
    SELECT '01900000-0003-7000-8000-' || lpad(to_hex(g), 12, '0'),
        '01900000-0002-7000-8000-' || lpad(to_hex(g), 12, '0'),
        f.filled_at, f.drug_code, f.concentration, f.concentration_unit, f.diluted, f.volume_ml,
        f.residual_ml, f.prime_ml, f.first_fill, f.stability_days, f.clinician, f.expected_residual_ml,
        f.discrepancy, f.recorded_by, f.created_at
    FROM generate_series(0, :pumps - 1) g, (SELECT * FROM pump_fills WHERE pump_id = :'tmpl') f;
COMMIT;
VACUUM ANALYZE patients;
VACUUM ANALYZE pumps;
VACUUM ANALYZE pump_fills;
SQL
}

# The worklist query exactly as diesel issues it on PostgreSQL (bind parameters, prepared).
PG_WORKLIST='SELECT "pumps"."id", "patients"."given_name", "patients"."family_name" FROM ("pumps" INNER JOIN "patients" ON ("pumps"."patient_id" = "patients"."id")) WHERE (("pumps"."status" = $1) AND ("pumps"."due_date" <= $2)) ORDER BY "pumps"."due_date", "pumps"."id" LIMIT $3'

# query_postgres BACKEND LIMIT: plan (EXPLAIN ANALYZE, kept for the report when LIMIT is 100)
# and $RUNS timings of the prepared worklist query → "BACKEND sql LIMIT median max rows".
query_postgres() {
    local backend=$1 limit=$2 out times med max
    out=$({
        echo "PREPARE wl(text, text, bigint) AS $PG_WORKLIST;"
        echo "\\o /dev/null"
        echo "EXECUTE wl('active', '$UNTIL', $limit);"
        echo "\\o"
        echo "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) EXECUTE wl('active', '$UNTIL', $limit);"
        echo "\\o /dev/null"
        echo "\\timing on"
        for _ in $(seq 1 "$RUNS"); do echo "EXECUTE wl('active', '$UNTIL', $limit);"; done
        echo "\\timing off"
        echo "\\o"
        echo "SELECT 'ROWS ' || count(*) FROM (SELECT 1 FROM pumps JOIN patients ON patients.id = pumps.patient_id WHERE status = 'active' AND due_date <= '$UNTIL' ORDER BY due_date, pumps.id LIMIT $limit) x;"
    } | psql "$DB_URL" -X -q -v ON_ERROR_STOP=1 -tA)
    [ "$limit" != 100 ] || echo "$out" | grep -v -E '^(Time:|ROWS)' >"$PLANS/$backend"
    times=$(echo "$out" | awk '$1 == "Time:" {print $2 / 1000}')
    [ "$(echo "$times" | wc -l)" -eq "$RUNS" ] || { echo "bench: expected $RUNS timings"; echo "$out"; exit 1; } >&2
    read -r med _ _ <<<"$(echo "$times" | python3 "$HELPER" stats)"
    max=$(echo "$times" | awk 'BEGIN {m = 0} $1 > m {m = $1} END {printf "%.2f", m * 1000}')
    echo "$backend sql $limit $med $max $(echo "$out" | awk '$1 == "ROWS" {print $2}')" >>"$RESULTS"
}

# counts_postgres BACKEND → "BACKEND counts pumps fills due-in-window"; checks every stored
# forecast carries its row's due date.
counts_postgres() {
    local out
    out=$(psql "$DB_URL" -X -q -v ON_ERROR_STOP=1 -tA <<SQL
SELECT 'COUNTS ' || (SELECT count(*) FROM pumps) || ' ' || (SELECT count(*) FROM pump_fills) || ' '
    || (SELECT count(*) FROM pumps WHERE status = 'active' AND due_date <= '$UNTIL');
SELECT 'BADJSON ' || count(*) FROM pumps WHERE position('"due_date":"' || due_date || '"' in forecast) = 0;
SQL
)
    [ "$(echo "$out" | awk '$1 == "BADJSON" {print $2}')" = 0 ] || { echo "bench: forecast JSON without its due date" >&2; exit 1; }
    echo "$1 counts $(echo "$out" | awk '$1 == "COUNTS" {print $2, $3, $4}')" >>"$RESULTS"
}

query_sqlite() {
    local backend=$1 limit=$2 out
    out=$(python3 "$HELPER" query-sqlite "$DB_URL" "$UNTIL" --limit "$limit" --runs "$RUNS")
    if [ "$limit" = 100 ]; then
        echo "$out" | awk '$1 == "PLAN" {sub(/^PLAN /, ""); print}' >"$PLANS/$backend"
        echo "(EXPLAIN QUERY PLAN in python3's SQLite $(echo "$out" | awk '$1 == "SQLITE" {print $2}'))" >>"$PLANS/$backend"
    fi
    echo "$backend sql $limit $(echo "$out" | awk '$1 == "TIMES" {print $2, $3}') $(echo "$out" | awk '$1 == "ROWS" {print $2}')" >>"$RESULTS"
}

counts_sqlite() {
    echo "$1 counts $(python3 "$HELPER" counts-sqlite "$DB_URL" "$UNTIL")" >>"$RESULTS"
}

# http_worklist BACKEND LIMIT → "BACKEND http LIMIT median p95 n listed overdue"
http_worklist() {
    local backend=$1 limit=$2 url check http bad
    url="$BASE/api/v1/worklists/refills?within_days=14&limit=$limit"
    check=$(curl -sf "$url" -H "Authorization: Bearer $TOKEN" | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
dues = [i["due_date"] for i in items]
assert dues == sorted(dues), "not soonest first"
assert all(d <= sys.argv[1] for d in dues), "beyond the window"
print(len(items), sum(i["overdue"] for i in items))' "$UNTIL")
    for _ in 1 2 3; do curl -sf -o /dev/null "$url" -H "Authorization: Bearer $TOKEN"; done
    http=$(for _ in $(seq 1 "$RUNS"); do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$url" -H "Authorization: Bearer $TOKEN"
    done)
    bad=$(echo "$http" | awk '$1 != 200' | wc -l)
    [ "$bad" -eq 0 ] || { echo "bench: $bad worklist requests failed" >&2; exit 1; }
    echo "$backend http $limit $(echo "$http" | awk '{print $2}' | python3 "$HELPER" stats) $check" >>"$RESULTS"
}

port=18900
for backend in $backends; do
    port=$((port + 1))
    echo "$backend:"
    start_server "$backend" "$port"
    trap stop_server EXIT
    if [ "$backend" = postgres ]; then DB_URL="${PG_ADMIN_URL%/*}/$PG_DB"; else DB_URL="$WORKDIR/clinic.db"; fi

    # 1. One real pump through the API: its rows are the template for the bulk copy.
    now=$(date -u +%s)
    iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
    patient=$(api POST /api/v1/patients '{"given_name":"Bench","family_name":"Template","email":"bench@example.org","email_consent":true}' | field id)
    pump=$(api POST /api/v1/pumps "{\"patient_id\":\"$patient\",\"model\":\"synchromed-ii-40\",\"serial_number\":\"BENCH-TEMPLATE\",\"implanted_on\":\"$(date -u -d "$TODAY - 365 days" +%Y-%m-%d)\"}" | field id)
    api POST "/api/v1/pumps/$pump/programs" "{\"effective_at\":\"$(iso $((now - 2 * 86400)))\",\"kind\":\"flex\",\"steps\":[{\"start\":\"06:00\",\"end\":\"22:00\",\"rate_per_hour\":\"20\"},{\"start\":\"22:00\",\"end\":\"06:00\",\"rate_per_hour\":\"35\"}],\"bolus\":{\"dose\":\"25\",\"max_per_day\":4}}" >/dev/null
    template_due=$(api POST "/api/v1/pumps/$pump/fills" "{\"filled_at\":\"$(iso $((now - 3600)))\",\"drug\":\"baclofen\",\"concentration\":\"2000\",\"concentration_unit\":\"mcg/mL\",\"volume_ml\":\"40\",\"residual_ml\":\"4\",\"clinician\":\"Bench\"}" |
        python3 -c 'import json,sys; f = json.load(sys.stdin)["forecast"]; print(f["due_date"], f["binding"])')
    echo "  template pump $pump due $template_due"
    halt_server

    # 2. Bulk copy.
    t0=$(date +%s.%N)
    if [ "$backend" = postgres ]; then
        seed_postgres "$pump"
    else
        python3 "$HELPER" seed-sqlite "$DB_URL" "$pump" --pumps "$PUMPS" --patients "$PUMP_PATIENTS" \
            --overdue "$OVERDUE" --horizon "$HORIZON" >/dev/null
    fi
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", b - a}')
    echo "$backend seed $secs" >>"$RESULTS"
    echo "  seeded $PUMPS pumps, $PUMPS fills, $PUMP_PATIENTS patients in $secs s"

    # 3. The worklist: bare query, then the endpoint; limit 100 (the default), and 500 (the
    #    most allowed) which reaches past the overdue pumps into the 14-day window.
    [ "$backend" = postgres ] && psql "$DB_URL" -X -q -c CHECKPOINT  # the load's writes, out of the way
    serve_again "$port"
    "counts_$backend" "$backend"
    for limit in 100 500; do
        "query_$backend" "$backend" "$limit"
        http_worklist "$backend" "$limit"
    done
    grep "^$backend \(counts\|sql\|http\)" "$RESULTS" | sed 's/^/  /'
    echo "$backend rss $(rss_mb)" >>"$RESULTS"
    echo "$backend load $(cut -d' ' -f1 /proc/loadavg)" >>"$RESULTS"
    halt_server

    # 4. Recompute: on the big database (server stopped), then on a fresh one.
    echo "  recompute on the $PUMPS-pump database:"
    recompute "$backend" scale "$DB_URL"
    stop_server
    trap - EXIT
    echo "  recompute on a fresh database:"
    if [ "$backend" = postgres ]; then
        fresh="clinic_recompute_$(date +%s)_$$"
        psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $fresh"
        trap 'psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $fresh WITH (FORCE)"' EXIT
        recompute "$backend" fresh "${PG_ADMIN_URL%/*}/$fresh"
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $fresh WITH (FORCE)"
    else
        fresh=$(mktemp -d)
        trap 'rm -rf "$fresh"' EXIT
        recompute "$backend" fresh "$fresh/recompute.db"
        rm -rf "$fresh"
    fi
    trap - EXIT
done

section=$(mktemp)
{
    echo "### Pumps at scale: worklist and recompute"
    echo
    echo "Measured by \`bench/pumps_scale.sh\` on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(date -u +%Y-%m-%d), clients on the same machine."
    echo "Each backend: one patient, pump (SynchroMed II 40 mL), flex programme and baclofen fill"
    echo "created through the API, then copied in bulk with SQL into $PUMP_PATIENTS patients, $PUMPS"
    echo "active pumps ($OVERDUE overdue by 1–30 days, the rest due uniformly over the next $HORIZON"
    echo "days, each stored forecast carrying its own due date) and one fill per pump; PostgreSQL"
    echo "then \`VACUUM ANALYZE\` and \`CHECKPOINT\`. Window: due on or before $UNTIL (clinic today"
    echo "$TODAY + 14). SQL: the query \`worklist::refills\` issues (join to patients, \`status = 'active'"
    echo "AND due_date <= ?\`, \`ORDER BY due_date, id LIMIT n\`), timed client-side, $RUNS runs after one"
    echo "warm-up (PostgreSQL: prepared statement, psql \`\\timing\`; SQLite: python3's sqlite3"
    echo "module). HTTP: \`GET /api/v1/worklists/refills?within_days=14&limit=n\`, $RUNS sequential curls"
    echo "after 3 warm-ups; besides that query it loads each listed pump's row and parses its forecast"
    echo "JSON, reads its last fill and looks for a booked refill appointment (3 more queries per pump),"
    echo "and audits one read per listed patient. Limit 100 is the default and lists only overdue"
    echo "pumps here; 500, the most allowed, reaches into the 14-day window. Recompute:"
    echo "\`crates/pumps/examples/recompute_bench.rs\`, $RECOMPUTES calls of \`registry::recompute\` on one"
    echo "pump (flex programme, one fill), each in its own write transaction, after 20 warm-ups;"
    echo "\"recompute\" is the call alone, inside the transaction (where a fill or programme change"
    echo "runs it), \"with commit\" adds BEGIN and COMMIT."
    echo
    echo "| backend | pumps | fills | due within 14 days | bulk load s |"
    echo "|---|---:|---:|---:|---:|"
    for backend in $backends; do
        awk -v b="$backend" '
            $1 == b && $2 == "counts" {pumps = $3; fills = $4; window = $5}
            $1 == b && $2 == "seed" {seed = $3}
            END {printf "| %s | %d | %d | %d (%.1f %%) | %s |\n", b, pumps, fills, window, 100 * window / pumps, seed}' "$RESULTS"
    done
    echo
    echo "| backend | limit | listed (overdue) | SQL median ms | SQL max ms | HTTP median ms | HTTP p95 ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for backend in $backends; do
        for limit in 100 500; do
            awk -v b="$backend" -v l="$limit" '
                $1 == b && $2 == "sql" && $3 == l {sql = $4; sqlmax = $5}
                $1 == b && $2 == "http" && $3 == l {h50 = $4; h95 = $5; listed = $7; overdue = $8}
                END {printf "| %s | %s | %s (%s) | %s | %s | %s | %s |\n", b, l, listed, overdue, sql, sqlmax, h50, h95}' "$RESULTS"
        done
    done
    echo
    echo "| backend | recompute on | recompute mean µs | p50 µs | p99 µs | with commit mean µs | p50 µs | p99 µs |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    for backend in $backends; do
        for where in scale fresh; do
            awk -v b="$backend" -v w="$where" -v n="$PUMPS" '
                $1 == b && $2 == "recompute" && $3 == w && $4 == "recompute" {m = $5; p = $6; q = $7}
                $1 == b && $2 == "recompute" && $3 == w && $4 == "transaction" {tm = $5; tp = $6; tq = $7}
                END {printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n",
                     b, (w == "scale" ? "the " n "-pump database" : "a fresh database"), m, p, q, tm, tp, tq}' "$RESULTS"
        done
    done
    echo
    for backend in $backends; do
        echo "Plan of the worklist query (limit 100) on $backend:"
        echo
        echo '```'
        cat "$PLANS/$backend"
        echo '```'
        echo
    done
    for backend in $backends; do
        awk -v b="$backend" -v n="$PUMPS" '
            $1 == b && $2 == "sql" && $3 == 100 {sql = $4}
            $1 == b && $2 == "sql" && $3 == 500 {sql5 = $4}
            $1 == b && $2 == "http" && $3 == 100 {h50 = $4; h95 = $5}
            $1 == b && $2 == "http" && $3 == 500 {h5 = $4; h595 = $5}
            $1 == b && $2 == "recompute" && $3 == "scale" && $4 == "recompute" {rmean = $5; r50 = $6; r99 = $7}
            $1 == b && $2 == "recompute" && $3 == "scale" && $4 == "transaction" {t50 = $6; t99 = $7}
            $1 == b && $2 == "rss" {rss = $3}
            $1 == b && $2 == "load" {load = $3}
            END {
                w = (sql < 50 && sql5 < 50) ? "meets" : "MISSES"
                r = (rmean < 1000) ? "meets" : "MISSES"
                printf "- %s, %s pumps: the 14-day worklist query takes %s ms for 100 rows, %s ms for 500 (median; target < 50 ms, on the stored, indexed due date): %s the target. ", b, n, sql, sql5, w
                printf "The whole endpoint: %s ms median, %s ms p95 for 100 (%s 50 ms); %s ms median for 500. ", h50, h95, (h95 < 50 ? "under" : "over"), h5
                printf "One recompute: mean %.0f µs, p50 %.0f µs, p99 %.0f µs (target < 1 ms): %s the target on the mean; with its own commit p50 %.0f µs, p99 %.0f µs. ", rmean, r50, r99, r, t50, t99
                printf "Server RSS after the worklist runs %s MiB; 1-minute load average then %s.\n", rss, load
            }' "$RESULTS"
    done
} >"$section"
write_section pumps "$section"
cat "$section"
rm -rf "$PLANS" "$RESULTS" "$section"
