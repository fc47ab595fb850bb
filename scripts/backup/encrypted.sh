#!/usr/bin/env bash
# An encrypted SQLite backup in one step: `clinic backup` into a private temporary folder, then
# `age` encrypts it to the recipients' public keys and the plain copy is removed. Nothing
# readable is left on disk beside the encrypted file (security review F14).
#
#   scripts/backup/encrypted.sh OUT.age RECIPIENTS_FILE
#
# RECIPIENTS_FILE holds one age public key (age1…) per line; keep the matching identities off
# the server. Runs with the server's configuration (DATABASE_URL, CLINIC_DATA_DIR, --config via
# CLINIC_ARGS) while `clinic serve` runs. Restore:
#   age -d -i IDENTITY_FILE -o clinic.db OUT.age && clinic restore clinic.db
# Needs `age` (Debian: apt-get install age) and `clinic` on PATH, or CLINIC_BIN.
set -euo pipefail

out=${1:?usage: encrypted.sh OUT.age RECIPIENTS_FILE}
recipients=${2:?usage: encrypted.sh OUT.age RECIPIENTS_FILE}
clinic=${CLINIC_BIN:-clinic}
command -v age >/dev/null || { echo "encrypted.sh: 'age' is required (Debian: apt-get install age)" >&2; exit 1; }
[ -e "$out" ] && { echo "encrypted.sh: $out already exists; refusing to overwrite it" >&2; exit 1; }

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2086 # CLINIC_ARGS is a list of options on purpose
"$clinic" ${CLINIC_ARGS:-} backup "$work/clinic.db"
age --encrypt --recipients-file "$recipients" --output "$out.partial" "$work/clinic.db"
mv "$out.partial" "$out"
echo "encrypted backup written to $out"
