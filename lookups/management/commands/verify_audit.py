"""Walk the audit hash chain. Exit 0 when intact, 1 naming the first broken event."""

import sys

from django.core.management.base import BaseCommand

from lookups.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the audit log's hash chain."

    def handle(self, *args, **options):
        checked, broken = verify_chain()
        if broken is None:
            self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} events verified."))
            return
        self.stderr.write(
            f"Audit chain BROKEN at event #{broken.sequence}: {broken.reason} ({checked} events verified before it)."
        )
        sys.exit(1)
