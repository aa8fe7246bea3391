"""Signed chain heads (issue 13): tamper evidence against someone who can rewrite the database.

The chain alone proves only internal consistency: with SQL access one can rewrite rows and
recompute every hash. So, at least hourly, the head (last sequence and hash) is signed with
an Ed25519 key that lives outside the database (``KINGUARD_AUDIT_SIGNING_KEY``, base64 of
the 32-byte private key, or ``KINGUARD_AUDIT_SIGNING_KEY_FILE``) and shipped off the database:
one JSON line on the ``kinguard.audit.head`` logger (the central JSON log) and one appended
line in ``KINGUARD_AUDIT_HEAD_DIR/heads.jsonl`` (put that directory on WORM storage in
production). Anyone holding the public key (``manage.py audit_public_key``) can check that a
later database still contains each signed head.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.utils import timezone

from .audit_verify import HEAD_FORMAT, head_message
from .models import AuditChainHead

logger = logging.getLogger("kinguard.audit.head")
_generated: Ed25519PrivateKey | None = None


def _private_key() -> Ed25519PrivateKey:
    """The configured key; without one (tests, dev) a key generated once per process."""
    global _generated
    raw = getattr(settings, "KINGUARD_AUDIT_SIGNING_KEY", "") or ""
    if raw:
        return Ed25519PrivateKey.from_private_bytes(base64.b64decode(raw))
    if _generated is None:
        _generated = Ed25519PrivateKey.generate()
    return _generated


def public_key() -> Ed25519PublicKey:
    return _private_key().public_key()


def public_key_b64() -> str:
    raw = public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_id() -> str:
    return hashlib.sha256(base64.b64decode(public_key_b64())).hexdigest()[:16]


def heads_path() -> Path:
    return Path(settings.KINGUARD_AUDIT_HEAD_DIR) / "heads.jsonl"


def head_sign() -> dict[str, Any]:
    """Sign the current chain head and ship it to the JSON log and the append-only file."""
    head = AuditChainHead.objects.filter(pk=1).values("last_sequence", "last_hash").first()
    fields = {
        "format": HEAD_FORMAT,
        "sequence": head["last_sequence"] if head else 0,
        "hash": head["last_hash"] if head else "0" * 64,
        "signed_at": timezone.now().isoformat(timespec="seconds"),
        "key_id": key_id(),
    }
    signed = {**fields, "signature": base64.b64encode(_private_key().sign(head_message(fields))).decode()}
    line = json.dumps(signed, sort_keys=True)
    path = heads_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_APPEND: each line is added at the end; nothing here ever rewrites the file.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    logger.info("audit head signed", extra={"audit_head": signed})
    return signed


def signed_heads() -> list[dict[str, Any]]:
    """Every signed head in the append-only file whose signature checks with our key, oldest first."""
    path = heads_path()
    if not path.exists():
        return []
    heads = []
    key = public_key()
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            head = json.loads(text)
            key.verify(base64.b64decode(head["signature"]), head_message(head))
        except Exception:  # noqa: BLE001 - a foreign or damaged line is not evidence
            logger.warning("ignoring a signed-head line that does not verify with the current key")
            continue
        heads.append(head)
    return heads


def latest_signed_head() -> dict[str, Any] | None:
    heads = signed_heads()
    return heads[-1] if heads else None


@dataclass(frozen=True)
class HeadMismatch:
    sequence: int
    reason: str


def check_against_signed_heads(hash_at: dict[int, str], last_sequence: int) -> HeadMismatch | None:
    """Compare the database's hashes with every signed head; name the first event that may differ."""
    previous_good = 0
    for head in signed_heads():
        sequence = int(head["sequence"])
        if sequence == 0:
            continue
        if sequence > last_sequence:
            return HeadMismatch(
                last_sequence + 1,
                f"the head signed at {head['signed_at']} covers event #{sequence}, the database ends at "
                f"#{last_sequence}: events were removed after the signature",
            )
        if hash_at.get(sequence) != head["hash"]:
            return HeadMismatch(
                previous_good + 1,
                f"rows rewritten and re-chained after the last signature that still matches (#{previous_good}): "
                f"the head signed at {head['signed_at']} says event #{sequence} hashes to {head['hash'][:16]}…, "
                f"the database says {str(hash_at.get(sequence))[:16]}…",
            )
        previous_good = sequence
    return None
