"""Sender API tokens: 32 random bytes shown once; only their SHA-256 is stored.

SHA-256 (not a slow password hash) is right here: the token has 256 bits of entropy, so the
stored hash cannot be brute-forced, and every request can be checked cheaply.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.db import transaction
from django.utils import timezone

from .models import LabSender

# A public prefix (lets secret scanners recognise a leaked token), not a secret.
TOKEN_PREFIX = "kglab_"  # noqa: S105  # nosec


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def sender_for_token(token: str) -> LabSender | None:
    """The active, unrevoked sender holding ``token``, or None (constant-time hash compare)."""
    if not token or len(token) > 200:
        return None
    digest = token_hash(token)
    sender = LabSender.objects.filter(token_hash=digest).first()
    if sender is None or not hmac.compare_digest(sender.token_hash, digest):
        return None
    if not sender.active or sender.revoked_at is not None:
        return None
    return sender


def sender_create(*, name: str, clinic_ids: list[int]) -> tuple[LabSender, str]:
    token = new_token()
    with transaction.atomic():
        sender = LabSender.objects.create(name=name, token_hash=token_hash(token))
        sender.clinics.set(clinic_ids)
    return sender, token


def sender_rotate(*, name: str) -> tuple[LabSender, str]:
    """A new token; the old one stops working at once."""
    token = new_token()
    with transaction.atomic():
        sender = LabSender.objects.select_for_update().get(name=name)
        sender.token_hash = token_hash(token)
        sender.rotated_at = timezone.now()
        sender.save(update_fields=["token_hash", "rotated_at"])
    return sender, token


def sender_revoke(*, name: str) -> LabSender:
    with transaction.atomic():
        sender = LabSender.objects.select_for_update().get(name=name)
        sender.active = False
        sender.revoked_at = timezone.now()
        sender.save(update_fields=["active", "revoked_at"])
    return sender
