#!/usr/bin/env bash
# CI: an encrypted backup (scripts/backup/encrypted.sh) restores with `clinic restore` to the
# database as it was when the backup was taken, and leaves no plain copy behind.
# Usage: CLINIC_BIN=target/debug/clinic scripts/backup/check.sh   (installs `age` if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${CLINIC_BIN:-target/debug/clinic}")
command -v age >/dev/null || { apt-get update -qq && apt-get install -y -qq age; }

w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
export CLINIC_DATA_DIR="$w/data" DATABASE_URL="$w/data/clinic.db" RUST_LOG=warn
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BIN" migrate >/dev/null
"$BIN" token create --name before-backup --scope patients:read >/dev/null 2>&1
age-keygen -o "$w/identity" 2>/dev/null
age-keygen -y "$w/identity" >"$w/recipients"

CLINIC_BIN="$BIN" TMPDIR="$w" scripts/backup/encrypted.sh "$w/clinic.db.age" "$w/recipients"
"$BIN" token create --name after-backup --scope patients:read >/dev/null 2>&1

[ "$(find "$w" -maxdepth 1 -mindepth 1 | sort | tr '\n' ' ')" = "$w/clinic.db.age $w/data $w/identity $w/recipients " ] ||
    fail "something besides the encrypted file was left: $(ls "$w")"
grep -q "SQLite format 3" "$w/clinic.db.age" && fail "the backup is not encrypted"
[ "$(stat -c %a "$w/clinic.db.age")" = 600 ] || fail "the encrypted backup is not 0600"
CLINIC_BIN="$BIN" scripts/backup/encrypted.sh "$w/clinic.db.age" "$w/recipients" 2>/dev/null &&
    fail "an existing backup was overwritten"

age --decrypt --identity "$w/identity" --output "$w/restored.db" "$w/clinic.db.age"
"$BIN" restore "$w/restored.db" 2>"$w/restore.err" >/dev/null
grep -q "REVOKED since then is ACTIVE again" "$w/restore.err" || fail "restore did not warn about revocations"
tokens=$("$BIN" token list)
echo "$tokens" | grep -q before-backup || fail "the token made before the backup is missing: $tokens"
echo "$tokens" | grep -q after-backup && fail "the token made after the backup survived the restore: $tokens"
echo "PASS: encrypted backup restored to the moment it was taken; no plain copy left"
