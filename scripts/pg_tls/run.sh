#!/usr/bin/env bash
# PostgreSQL over verified TLS (security finding F2), run by .ci/run: builds `clinic` with
# `--features postgres-tls` (libpq and OpenSSL from source, docs/decisions/0001), starts a
# throw-away PostgreSQL cluster with ssl=on that refuses every clear-text TCP connection, makes
# a test CA, a server certificate signed by it and an unrelated CA with the openssl CLI, and
# checks:
#   a  verify-full with the right CA: `clinic migrate`, then `clinic serve` answers /readyz,
#      creates and reads a patient, and every connection of the server to the database is TLS
#      (pg_stat_ssl), none in clear;
#   b  verify-full with the unrelated CA: refused (certificate verify failed), nothing migrated
#      (each refusal is tried on a fresh empty database, which must stay empty);
#   c  verify-full to a name the certificate does not hold (db.clinic.test, resolved to the
#      server with hostaddr=127.0.0.1): refused (host name mismatch), nothing migrated;
#   d  sslmode=disable: the server refuses it (pg_hba hostnossl reject), nothing migrated;
#   e  verify-full to a non-local name the certificate holds (pg.clinic.test, hostaddr): it
#      migrates a fresh database, so the start-up policy's accepted path for a remote host works;
#   f  sslmode=require to that non-local name: `clinic` itself refuses it (start-up policy,
#      crates/server/src/serve.rs postgres_tls_policy), nothing migrated.
# Each check prints "PASS <name>" or "FAIL <name>: why"; the script exits 1 if any failed.
#
# Usage: bash scripts/pg_tls/run.sh
# Needs: cargo (with perl and make for the OpenSSL build), openssl, psql, curl, python3, and
# the PostgreSQL server binaries (initdb, pg_ctl; PG_BIN, default /usr/lib/postgresql/15/bin).
# As root, the cluster runs as the `postgres` OS user (initdb refuses root).
# Settings (environment): PG_BIN; CLINIC_BIN=path to skip the build and test that binary
# instead; PG_TLS_KEEP=1 keeps the temp folder (logs, certificates, cluster) for a look.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

need() { command -v "$1" >/dev/null 2>&1 || { echo "pg_tls: '$1' is required ($2)" >&2; exit 1; }; }
need openssl "Debian: apt-get install openssl"
need psql "Debian: apt-get install postgresql-client"
need curl "Debian: apt-get install curl"
need python3 "Debian: apt-get install python3"
[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] \
    || { echo "pg_tls: no initdb/pg_ctl in $PG_BIN (apt-get install postgresql, or set PG_BIN)" >&2; exit 1; }

PG_AS=""
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "pg_tls: running as root needs a 'postgres' OS user for initdb" >&2; exit 1; }
    PG_AS=postgres
fi
as_pg() { if [ -n "$PG_AS" ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

WORK=$(mktemp -d /tmp/clinic-pg-tls.XXXXXX)
chmod 755 "$WORK" # the cluster's user must reach $WORK/pg
PG_DIR="$WORK/pg"
PG_STARTED=0
SERVER_PID=""

cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$PG_STARTED" = 1 ]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ "${PG_TLS_KEEP:-0}" = 1 ]; then
        echo "pg_tls: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

log() { echo "pg_tls: $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

FAILED=0
pass() { echo "PASS $1"; }
fail() {
    echo "FAIL $1: $2"
    FAILED=$((FAILED + 1))
}
# show FILE: the end of a log, indented, after a FAIL line.
show() { tail -n 15 "$1" 2>/dev/null | sed 's/^/    | /'; }

# ---- 1. the postgres-tls build ---------------------------------------------------------------

if [ -n "${CLINIC_BIN:-}" ]; then
    BIN="$CLINIC_BIN"
    log "testing $BIN (CLINIC_BIN set: no build)"
else
    log "cargo build -p clinic-server --features postgres-tls (debug)"
    t0=$SECONDS
    (cd "$ROOT" && cargo build -q -p clinic-server --features postgres-tls)
    log "build took $((SECONDS - t0)) s"
    # A copy, so that another cargo build of the default features, which writes the same
    # target/debug/clinic, cannot swap the binary under the checks.
    BIN="$WORK/clinic"
    cp "$ROOT/target/debug/clinic" "$BIN"
fi
[ -x "$BIN" ] || { echo "pg_tls: no binary at $BIN" >&2; exit 1; }

# ---- 2. certificates -------------------------------------------------------------------------

CERTS="$WORK/certs"
mkdir -p "$CERTS"
# make_ca NAME CN: NAME.key, NAME.pem
make_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=$2" -keyout "$CERTS/$1.key" -out "$CERTS/$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>"$CERTS/$1.log"
}
make_ca ca "clinic pg_tls test CA"
make_ca other-ca "unrelated test CA"
# The server: localhost and 127.0.0.1 (the local names), and pg.clinic.test, a name the
# start-up policy treats as remote (check e). db.clinic.test is deliberately absent (check c).
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$CERTS/server.key" -out "$CERTS/server.csr" 2>"$CERTS/server.log"
cat >"$CERTS/server.ext" <<'EXT'
subjectAltName = DNS:localhost, IP:127.0.0.1, DNS:pg.clinic.test
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
EXT
openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" -set_serial 1 \
    -days 2 -extfile "$CERTS/server.ext" -out "$CERTS/server.crt" 2>>"$CERTS/server.log"
openssl verify -CAfile "$CERTS/ca.pem" "$CERTS/server.crt" >/dev/null
if openssl verify -CAfile "$CERTS/other-ca.pem" "$CERTS/server.crt" >/dev/null 2>&1; then
    echo "pg_tls: the unrelated CA verifies the server certificate; the test set-up is wrong" >&2
    exit 1
fi
CA="$CERTS/ca.pem"
OTHER_CA="$CERTS/other-ca.pem"

# ---- 2. the private cluster, TLS only ---------------------------------------------------------

mkdir -p "$PG_DIR"
[ -n "$PG_AS" ] && chown postgres: "$PG_DIR"
PG_PORT=$(free_port)
as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >"$WORK/initdb.log" 2>&1 \
    || { cat "$WORK/initdb.log" >&2; exit 1; }
cp "$CERTS/server.crt" "$CERTS/server.key" "$PG_DIR/data/"
[ -n "$PG_AS" ] && chown postgres: "$PG_DIR/data/server.crt" "$PG_DIR/data/server.key"
chmod 600 "$PG_DIR/data/server.key"
cat >>"$PG_DIR/data/postgresql.conf" <<CONF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_DIR'
fsync = off
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
CONF
# Over TCP only TLS gets in (trust, since the point is the channel, not the password); the
# Unix socket, for the script's own checks, stays open.
cat >"$PG_DIR/data/pg_hba.conf" <<'HBA'
local     all all              trust
hostssl   all all 127.0.0.1/32 trust
hostnossl all all 0.0.0.0/0    reject
hostnossl all all ::/0         reject
HBA
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 start >/dev/null \
    || { cat "$PG_DIR/postgres.log" >&2; exit 1; }
PG_STARTED=1
log "private PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') with ssl=on on 127.0.0.1:$PG_PORT"

# sql DB QUERY: over the cluster's Unix socket, as the superuser.
sql() { psql -X -qAt -h "$PG_DIR" -p "$PG_PORT" -U postgres -d "$1" -v ON_ERROR_STOP=1 -c "$2"; }
sql postgres "CREATE DATABASE clinic" >/dev/null
tables() { sql "$1" "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"; }

# clinic NAME URL ARGS…: runs the binary with a clean environment (no PG* variables, a HOME
# without ~/.postgresql) → RC; output in $WORK/NAME.out and .err.
mkdir -p "$WORK/home"
clinic() {
    local name=$1 url=$2
    shift 2
    RC=0
    env -i PATH="$PATH" HOME="$WORK/home" RUST_LOG=warn DATABASE_URL="$url" \
        CLINIC_DATA_DIR="$WORK/data-$name" CLINIC_PHONE="+1 312 555 0100" \
        timeout 120 "$BIN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
}

LOCAL="postgres://postgres@localhost:$PG_PORT"
VERIFIED="sslmode=verify-full&sslrootcert=$CA"

# ---- a. verify-full with the right CA ---------------------------------------------------------

URL_OK="$LOCAL/clinic?$VERIFIED"
clinic a-migrate "$URL_OK" migrate
n=$(tables clinic)
if [ "$RC" = 0 ] && [ "$n" -gt 0 ]; then
    pass "a1 clinic migrate over verify-full ($n tables created)"
else
    fail "a1 clinic migrate over verify-full" "exit $RC, $n tables"
    show "$WORK/a-migrate.err"
fi

APP_PORT=$(free_port)
mkdir -p "$WORK/data-serve"
env -i PATH="$PATH" HOME="$WORK/home" RUST_LOG=warn DATABASE_URL="$URL_OK" \
    CLINIC_DATA_DIR="$WORK/data-serve" CLINIC_BIND="127.0.0.1:$APP_PORT" CLINIC_PHONE="+1 312 555 0100" \
    "$BIN" serve >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
started=0
for _ in $(seq 1 600); do # at most 60 s
    if grep -q "Listening on" "$WORK/serve.out" 2>/dev/null; then started=1; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
BASE="http://127.0.0.1:$APP_PORT"
if [ $started = 1 ]; then
    pass "a2 clinic serve started over verify-full"
    ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$BASE/readyz" || true)
    if [ "$ready" = 200 ]; then pass "a3 /readyz 200"; else fail "a3 /readyz" "status $ready"; fi

    TOKEN=$(grep -Eo 'clinic_[0-9a-f]{64}' "$WORK/serve.out" | head -1 || true)
    created=$(curl -s --max-time 10 -o "$WORK/patient.json" -w '%{http_code}' -X POST "$BASE/api/v1/patients" \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d '{"given_name":"Tess","family_name":"Pgtls","email":"tess.pgtls@example.org","email_consent":false}' || true)
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/patient.json" 2>/dev/null || true)
    read_back=""
    if [ -n "$id" ]; then
        read_back=$(curl -s --max-time 10 -H "Authorization: Bearer $TOKEN" "$BASE/api/v1/patients/$id" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin).get("family_name",""))' 2>/dev/null || true)
    fi
    stored=$(sql clinic "SELECT count(*) FROM patients WHERE family_name = 'Pgtls'" 2>/dev/null || echo "?")
    if [ -n "$TOKEN" ] && [ "$created" = 201 ] && [ "$read_back" = Pgtls ] && [ "$stored" = 1 ]; then
        pass "a4 patient created (201) and read back over HTTP, stored in PostgreSQL"
    else
        fail "a4 patient over HTTP" "token ${TOKEN:+found}${TOKEN:-missing}, POST $created, read back '$read_back', rows $stored"
        show "$WORK/patient.json"
    fi

    # Every connection the server holds to its database, seen from the server side; the query
    # itself goes over TLS too, verified by psql (libpq) with the same CA.
    PSQL_TLS="host=localhost port=$PG_PORT dbname=postgres user=postgres sslmode=verify-full sslrootcert=$CA"
    q="SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl),
              string_agg(DISTINCT s.version || ' ' || s.cipher, ', ')
       FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = 'clinic'"
    if counts=$(psql -X -qAt -F ' ' -v ON_ERROR_STOP=1 "$PSQL_TLS" -c "$q" 2>"$WORK/psql.err"); then
        read -r tls clear proto <<<"$counts"
        if [ "$tls" -gt 0 ] && [ "$clear" = 0 ]; then
            pass "a5 pg_stat_ssl: $tls server connections over TLS ($proto), 0 in clear"
        else
            fail "a5 pg_stat_ssl" "$tls over TLS, $clear in clear"
        fi
    else
        fail "a5 pg_stat_ssl" "psql over verify-full failed"
        show "$WORK/psql.err"
    fi

    kill -TERM "$SERVER_PID" 2>/dev/null || true
    stop_rc=0
    wait "$SERVER_PID" 2>/dev/null || stop_rc=$?
    SERVER_PID=""
    if [ "$stop_rc" = 0 ]; then pass "a6 clinic serve stopped cleanly on SIGTERM"; else fail "a6 SIGTERM" "exit $stop_rc"; fi
else
    fail "a2 clinic serve over verify-full" "no 'Listening on' within 60 s"
    show "$WORK/serve.err"
fi

# ---- b–f. what must not connect (or must, for e) ----------------------------------------------

# refused NAME DESCRIPTION URL REGEX: on a fresh empty database neg_NAME (the URL names it
# {db}), `clinic migrate` exits non-zero with REGEX on stderr, and the database stays empty.
refused() {
    local name=$1 what=$2 url=${3//"{db}"/neg_$1} regex=$4 n why=""
    sql postgres "CREATE DATABASE neg_$name" >/dev/null
    clinic "$name" "$url" migrate
    n=$(tables "neg_$name")
    [ "$RC" != 0 ] || why="exit 0"
    grep -Eqi "$regex" "$WORK/$name.err" || why="${why:+$why, }stderr does not match /$regex/"
    [ "$n" = 0 ] || why="${why:+$why, }$n tables were created"
    if [ -z "$why" ]; then
        pass "$name $what (exit $RC: $(grep -Eoi "$regex" "$WORK/$name.err" | head -1))"
    else
        fail "$name $what" "$why"
        show "$WORK/$name.err"
    fi
}

refused b "verify-full with an unrelated CA is refused, nothing migrated" \
    "$LOCAL/{db}?sslmode=verify-full&sslrootcert=$OTHER_CA" "certificate verify failed"

refused c "verify-full to a name not in the certificate is refused, nothing migrated" \
    "postgres://postgres@db.clinic.test:$PG_PORT/{db}?hostaddr=127.0.0.1&$VERIFIED" \
    'does not match host name "db\.clinic\.test"'

refused d "sslmode=disable is refused by the server (TLS required), nothing migrated" \
    "$LOCAL/{db}?sslmode=disable" "pg_hba\.conf rejects connection .*no encryption"

sql postgres "CREATE DATABASE pos_e" >/dev/null
clinic e "postgres://postgres@pg.clinic.test:$PG_PORT/pos_e?hostaddr=127.0.0.1&$VERIFIED" migrate
n=$(tables pos_e)
if [ "$RC" = 0 ] && [ "$n" -gt 0 ]; then
    pass "e verify-full to a non-local name in the certificate (pg.clinic.test) migrates ($n tables)"
else
    fail "e verify-full to pg.clinic.test" "exit $RC, $n tables"
    show "$WORK/e.err"
fi

refused f "sslmode=require to a non-local name is refused by clinic's start-up policy, nothing migrated" \
    "postgres://postgres@pg.clinic.test:$PG_PORT/{db}?hostaddr=127.0.0.1&sslmode=require&sslrootcert=$CA" \
    "is not the local host"

# ---- verdict ---------------------------------------------------------------------------------

if [ "$FAILED" = 0 ]; then
    echo "pg_tls: all checks passed"
else
    echo "pg_tls: $FAILED check(s) FAILED (PG_TLS_KEEP=1 keeps $WORK with the logs)"
    exit 1
fi
