#!/usr/bin/env bash
# Restore rehearsal: restore a dump into a SCRATCH database and prove the copy is usable:
# its audit chain verifies and its ID numbers and face templates decrypt with the escrowed keys.
#   deploy/restore_rehearsal.sh /var/backups/kinguard/kinguard-<stamp>.dump
# Needs: REHEARSAL_ADMIN_URL (a PostgreSQL URL allowed to create databases) and the keys from
# escrow in the environment (SECRET_KEY, KINGUARD_ENCRYPTION_KEYS, KINGUARD_ID_HASH_KEY).
# Exit 0 only when `manage.py verify_restore` passes. The scratch database is dropped at the end.
set -euo pipefail
dump=${1:?usage: restore_rehearsal.sh DUMP}
: "${REHEARSAL_ADMIN_URL:?set REHEARSAL_ADMIN_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres}"
: "${KINGUARD_ENCRYPTION_KEYS:?the escrowed encryption keys}"
: "${KINGUARD_ID_HASH_KEY:?the escrowed ID hash key}"
scratch=kinguard_rehearsal_$(date -u +%Y%m%d%H%M%S)
base=${REHEARSAL_ADMIN_URL%/*}
psql "$REHEARSAL_ADMIN_URL" -qc "CREATE DATABASE $scratch"
trap 'psql "$REHEARSAL_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $scratch" >/dev/null' EXIT
pg_restore --no-owner --dbname="$base/$scratch" "$dump"
cd "$(dirname "$0")/.."
DATABASE_URL="$base/$scratch" DJANGO_SETTINGS_MODULE=config.settings.local \
  SECRET_KEY="${SECRET_KEY:-rehearsal-only}" ${PYTHON:-python} manage.py verify_restore
