#!/usr/bin/env bash
# Kinguard backup: one PostgreSQL dump (custom format) per run, kept KEEP_DAYS days.
# The dump holds ID numbers and face templates ENCRYPTED; the keys are NOT in it and must be
# escrowed separately (README "Backup, restore and key escrow"). Private files (sampling photos)
# under KINGUARD_PRIVATE_STORAGE are archived beside it.
#   DATABASE_URL=postgres://... BACKUP_DIR=/var/backups/kinguard deploy/backup.sh
# Compose: docker compose exec -T db pg_dump -U kinguard -Fc kinguard > kinguard-$(date +%F).dump
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL}"
BACKUP_DIR=${BACKUP_DIR:-/var/backups/kinguard}
KEEP_DAYS=${KEEP_DAYS:-30}
PRIVATE=${KINGUARD_PRIVATE_STORAGE:-/var/lib/kinguard/private}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
umask 077
mkdir -p "$BACKUP_DIR"
pg_dump --format=custom --no-owner --file="$BACKUP_DIR/kinguard-$stamp.dump" "$DATABASE_URL"
if [ -d "$PRIVATE" ]; then
  tar -C "$PRIVATE" -czf "$BACKUP_DIR/kinguard-private-$stamp.tar.gz" .
fi
sha256sum "$BACKUP_DIR"/kinguard-*"$stamp"* > "$BACKUP_DIR/kinguard-$stamp.sha256"
find "$BACKUP_DIR" -name 'kinguard-*' -mtime +"$KEEP_DAYS" -delete
echo "backup written: $BACKUP_DIR/kinguard-$stamp.dump"
