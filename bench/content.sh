#!/usr/bin/env bash
# Content benchmark (issue 3): the public article list (JSON) and the rendered article page
# (HTML) next to /healthz, in one run, on SQLite and PostgreSQL. Target: the article page at
# >= 30 % of /healthz throughput. Writes the results into docs/performance.md.
# Usage: bench/content.sh [sqlite|postgres|both]
source "$(dirname "$0")/lib.sh"

backends=${1:-both}
[ "$backends" = both ] && backends="sqlite postgres"
build_release
RESULTS=$(mktemp)
port=18600
for backend in $backends; do
    port=$((port + 1))
    start_server "$backend" "$port"   # an empty database is seeded: one published article
    trap stop_server EXIT
    curl -sf "$BASE/articles/intrathecal-pump-therapy" >/dev/null
    echo "$backend:"
    run_wrk "$backend /healthz" "$BASE/healthz"
    run_wrk "$backend article-list" "$BASE/api/v1/articles"
    run_wrk "$backend article-page" "$BASE/articles/intrathecal-pump-therapy"
    echo "$backend rss $(rss_mb)" >>"$RESULTS"
    stop_server
    trap - EXIT
done

section=$(mktemp)
{
    echo "### Content: public article list and article page"
    echo
    echo "Measured by \`bench/content.sh\` on $(machine_note)."
    echo
    echo "| backend | level | req/s | p50 ms | p99 ms | errors |"
    echo "|---|---|---:|---:|---:|---:|"
    awk '$2 != "rss" {printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}' "$RESULTS"
    echo
    for backend in $backends; do
        awk -v b="$backend" '
            $1 == b && $2 == "/healthz" {health = $3}
            $1 == b && $2 == "article-page" {page = $3}
            $1 == b && $2 == "article-list" {list = $3}
            $1 == b && $2 == "rss" {rss = $3}
            END {
                ratio = health > 0 ? 100 * page / health : 0
                printf "- %s: article page at %.0f %% of /healthz throughput (target >= 30 %%): %s; article list at %.0f %%; server RSS after the run %s MiB.\n", b, ratio, (ratio >= 30 ? "meets the target" : "MISSES the target"), (health > 0 ? 100 * list / health : 0), rss
            }' "$RESULTS"
    done
} >"$section"
write_section content "$section"
cat "$section"
