"""Walk the audit hash chain. Exit 0 when intact, 1 naming the first broken event."""

import sys

from django.core.management.base import BaseCommand

from lookups.audit import verify_chain
from lookups.audit_signing import check_against_signed_heads, signed_heads
from lookups.models import AuditEvent


class Command(BaseCommand):
    help = "Verify the audit log's hash chain."

    def handle(self, *args, **options):
        checked, broken = verify_chain()
        if broken is None:
            heads = signed_heads()
            wanted = [int(head["sequence"]) for head in heads]
            hash_at = dict(AuditEvent.objects.filter(sequence__in=wanted).values_list("sequence", "hash"))
            mismatch = check_against_signed_heads(hash_at, checked)
            if mismatch is not None:
                self.stderr.write(f"Audit chain BROKEN at event #{mismatch.sequence}: {mismatch.reason}.")
                sys.exit(1)
            latest = (
                f"; matches the latest signed head #{heads[-1]['sequence']} ({heads[-1]['signed_at']})"
                if heads
                else "; no signed head yet"
            )
            self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} events verified{latest}."))
            return
        self.stderr.write(
            f"Audit chain BROKEN at event #{broken.sequence}: {broken.reason} ({checked} events verified before it)."
        )
        sys.exit(1)
