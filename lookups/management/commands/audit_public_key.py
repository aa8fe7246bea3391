"""Print the audit signing public key (base64), for python -m lookups.audit_verify --public-key."""

from django.core.management.base import BaseCommand

from lookups.audit_signing import key_id, public_key_b64


class Command(BaseCommand):
    help = "Print the Ed25519 public key that verifies signed audit chain heads."

    def handle(self, *args, **options):
        self.stdout.write(public_key_b64())
        self.stderr.write(f"key id {key_id()}")
