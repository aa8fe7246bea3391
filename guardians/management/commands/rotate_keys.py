"""Re-encrypt stored ID numbers and face templates under the newest encryption key."""

from django.core.management.base import BaseCommand

from guardians.key_rotation import keys_rotate, rows_remaining
from lookups.audit import Actor


class Command(BaseCommand):
    help = "Rotate ciphertexts to the first key of KINGUARD_ENCRYPTION_KEYS (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--check", action="store_true", help="only count rows not yet under the newest key")

    def handle(self, *args, batch_size, check, **options):
        if check:
            remaining = rows_remaining()
            self.stdout.write(f"{remaining} ciphertext(s) not yet under the newest key.")
            return
        report = keys_rotate(actor=Actor.system("rotate_keys"), batch_size=batch_size)
        self.stdout.write(
            self.style.SUCCESS(f"Rotated {report.rotated} ciphertext(s); {report.already_current} already current.")
        )
