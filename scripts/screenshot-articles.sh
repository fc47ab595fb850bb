#!/usr/bin/env bash
# Screenshots of the public article pages, phone-size (412x915) and desktop-size (1280x900),
# taken by headless Chromium from an already built `clinic` binary on a throwaway database
# (seeded with the sample article on first start).
#
#   scripts/screenshot-articles.sh [OUTPUT_DIR]      # default: ./screenshots
#
# Builds nothing: uses $CLINIC_BIN if set, else target/release/clinic, else target/debug/clinic
# (debug wins when it is newer than release, so a stale release build is not photographed).
# It stops if the binary does not serve /articles as HTML (built before the pages existed).
# Chromium is $CHROMIUM, else chromium or chromium-browser on PATH (Debian: apt-get install
# chromium). The phone shot is the first screen only, as a phone shows it on opening the page.
# CLINIC_NAME and CLINIC_PHONE are passed through if set. DATABASE_URL and CLINIC_CONFIG are
# ignored so a real database is never touched.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
out_dir="${1:-screenshots}"
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"

release="$repo/target/release/clinic"
debug="$repo/target/debug/clinic"
if [ -n "${CLINIC_BIN:-}" ]; then
    bin="$CLINIC_BIN"
elif [ -x "$release" ] && ! { [ -x "$debug" ] && [ "$debug" -nt "$release" ]; }; then
    bin="$release"
elif [ -x "$debug" ]; then
    bin="$debug"
else
    echo "No clinic binary in $repo/target/{release,debug}. Build it first: cargo build (or cargo build --release)" >&2
    exit 1
fi

chromium="${CHROMIUM:-}"
if [ -z "$chromium" ]; then
    chromium="$(command -v chromium || command -v chromium-browser || true)"
fi
if [ -z "$chromium" ] || ! command -v "$chromium" >/dev/null 2>&1; then
    echo "Chromium not found. Install it (Debian: apt-get install chromium) or set CHROMIUM=/path/to/chromium" >&2
    exit 1
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the OS picks a free port and the server prints it in "Listening on http://…".
(
    cd "$work"
    exec env -u DATABASE_URL -u CLINIC_CONFIG \
        CLINIC_DATA_DIR="$work/data" CLINIC_BIND=127.0.0.1:0 CLINIC_SEED_ON_FIRST_START=true \
        RUST_LOG="${RUST_LOG:-warn}" "$bin" serve
) >"$work/server.out" 2>"$work/server.err" &
server_pid=$!

base=""
for _ in $(seq 1 300); do
    base="$(sed -n 's/^Listening on //p' "$work/server.out" | head -n 1)"
    [ -n "$base" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "clinic serve exited before listening:" >&2
        cat "$work/server.err" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$base" ]; then
    echo "clinic serve did not print its address within 30 s:" >&2
    cat "$work/server.err" >&2
    exit 1
fi
echo "Using $bin at $base" >&2

# A binary built before the article pages existed answers /articles with a JSON 404.
if command -v curl >/dev/null 2>&1; then
    answer="$(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$base/articles" || true)"
    case "$answer" in
        "200 text/html"*) ;;
        *)
            echo "$bin does not serve the article pages (GET /articles: ${answer:-no answer})." >&2
            echo "It was probably built before them: rebuild it (cargo build, or cargo build --release) or set CLINIC_BIN." >&2
            exit 1
            ;;
    esac
fi

shoot() { # NAME PATH WIDTH HEIGHT
    local file="$out_dir/$1.png"
    rm -f "$file"
    if ! timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$(mktemp -d "$work/profile.XXXXXX")" --hide-scrollbars \
        --window-size="$3,$4" --screenshot="$file" "$base$2" >"$work/chromium.log" 2>&1 \
        || [ ! -s "$file" ]; then
        echo "Chromium could not screenshot $base$2:" >&2
        cat "$work/chromium.log" >&2
        exit 1
    fi
    echo "$file"
}

for page in articles articles/intrathecal-pump-therapy; do
    name="${page//\//-}"
    shoot "$name-phone" "/$page" 412 915
    shoot "$name-desktop" "/$page" 1280 900
done
