"""``manage.py verify_restore``: prove a restored copy is usable (the restore rehearsal).

Three checks, all must pass (exit 0), else exit 1 with what failed:
1. the audit hash chain verifies (``lookups.audit.verify_chain``, as ``verify_audit``);
2. every ID number decrypts with KINGUARD_ENCRYPTION_KEYS and its keyed hash, recomputed with
   KINGUARD_ID_HASH_KEY, equals the stored one (a wrong or missing hash key is caught here);
3. every face template decrypts.
Prints counts only, never a number or a name.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from guardians import crypto
from guardians.models import FaceEnrollment, Person
from lookups.audit import verify_chain


class Command(BaseCommand):
    help = "Verify a restored database: audit chain, ID numbers and face templates decrypt with the keys."

    def handle(self, *args, **options) -> None:
        failures: list[str] = []
        checked, broken = verify_chain()
        if broken is None:
            self.stdout.write(f"Audit chain intact: {checked} events verified.")
        else:
            failures.append(f"audit chain broken at event #{broken.sequence}: {broken.reason}")
        people = bad_ids = 0
        for person in Person.objects.only("pk", "id_number_hash", "id_number_ciphertext").iterator(chunk_size=500):
            people += 1
            try:
                number = crypto.decrypt(bytes(person.id_number_ciphertext)).decode()
                if crypto.keyed_hash(number) != person.id_number_hash:
                    bad_ids += 1
            except Exception:
                bad_ids += 1
        if bad_ids:
            failures.append(f"{bad_ids} of {people} ID numbers do not decrypt or do not match their keyed hash")
        else:
            self.stdout.write(f"ID numbers: {people} decrypted and matched their keyed hash.")
        templates = bad_templates = 0
        for enrollment in FaceEnrollment.objects.only("pk", "template_ciphertext").iterator(chunk_size=500):
            templates += 1
            try:
                crypto.decrypt(bytes(enrollment.template_ciphertext))
            except Exception:
                bad_templates += 1
        if bad_templates:
            failures.append(f"{bad_templates} of {templates} face templates do not decrypt")
        else:
            self.stdout.write(f"Face templates: {templates} decrypted.")
        if failures:
            for failure in failures:
                self.stderr.write(f"RESTORE CHECK FAILED: {failure}")
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS("Restore verified."))
