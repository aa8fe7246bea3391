"""Re-encrypt ID numbers and face templates under the newest key (MultiFernet rotation).

Put the new key first in KINGUARD_ENCRYPTION_KEYS (old keys after it), deploy, run
``manage.py rotate_keys``, then remove the old keys. The rotation works in batches, each in
its own transaction with its rows locked, and skips rows already under the newest key, so an
interrupted run simply continues where it stopped when started again.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models, transaction

from lookups.audit import Actor, audit_record
from lookups.fhir.models import PendingLabResult

from . import crypto
from .models import FaceEnrollment, Person

ROTATED_FIELDS: tuple[tuple[type[models.Model], str], ...] = (
    (Person, "id_number_ciphertext"),
    (FaceEnrollment, "template_ciphertext"),
    (PendingLabResult, "payload_ciphertext"),  # lab results waiting for a registration (issue 15)
)


@dataclass
class RotationReport:
    rotated: int = 0
    already_current: int = 0


def _primary() -> Fernet:
    key = settings.KINGUARD_ENCRYPTION_KEYS[0]
    return Fernet(key.encode() if isinstance(key, str) else key)


def is_current(token: bytes) -> bool:
    try:
        _primary().decrypt(bytes(token))
    except InvalidToken:
        return False
    return True


def rows_remaining() -> int:
    """How many ciphertexts are not yet under the newest key (reads every row)."""
    remaining = 0
    for model, field in ROTATED_FIELDS:
        for token in model._default_manager.values_list(field, flat=True).iterator(chunk_size=1000):
            remaining += not is_current(token)
    return remaining


def keys_rotate(*, actor: Actor, batch_size: int = 500) -> RotationReport:
    """Rotate every ciphertext to the newest key. Resumable; audited once per model."""
    report = RotationReport()
    multi = crypto.fernet()
    for model, field in ROTATED_FIELDS:
        last_pk = 0
        model_rotated = 0
        while True:
            with transaction.atomic():
                manager = model._default_manager
                rows = list(manager.select_for_update().filter(pk__gt=last_pk).order_by("pk")[:batch_size])
                if not rows:
                    break
                for row in rows:
                    token = bytes(getattr(row, field))
                    if is_current(token):
                        report.already_current += 1
                        continue
                    setattr(row, field, multi.rotate(token))
                    row.save(update_fields=[field])
                    model_rotated += 1
                last_pk = rows[-1].pk
        report.rotated += model_rotated
        with transaction.atomic():
            audit_record(
                actor=actor,
                action="keys.rotated",
                outcome="ok",
                details={"model": model._meta.label, "rotated": model_rotated},
            )
    return report
