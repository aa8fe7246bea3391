"""The audit log: one append-only, hash-chained sequence of events.

Invariant: events are appended only through :func:`audit_record`, which locks the single
``AuditChainHead`` row so sequence numbers are gapless and each event's ``prev_hash`` is
the previous event's ``hash``. Callers run it inside their own transaction, so an event
exists exactly when the change it describes was committed. The actor is always passed
explicitly (never thread-locals or signals, which miss Celery tasks and bulk writes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import models, transaction
from django.utils import timezone

from .audit_verify import canonical_content
from .audit_vocabulary import AuditAction, require_action
from .models import AuditChainHead, AuditEvent

if TYPE_CHECKING:
    from django.http import HttpRequest

    from guardians.models import Clinic, Person, User

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who does something: a signed-in user (with request origin) or a named system process."""

    user: User | None
    label: str
    ip: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        user = request.user if request.user.is_authenticated else None
        return cls(
            user=user,
            label=user.get_username() if user else "anonymous",
            ip=request.META.get("REMOTE_ADDR") or None,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )

    @classmethod
    def for_user(cls, user: User) -> Actor:
        return cls(user=user, label=user.get_username())

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(user=None, label=f"system:{name}")


def _json_safe(details: dict[str, Any] | None) -> dict[str, Any]:
    return json.loads(json.dumps(details or {}, default=str, sort_keys=True))


def hashed_content(event: AuditEvent) -> dict[str, Any]:
    """The fields the hash covers, as the verification bundle carries them."""
    return {
        "sequence": event.sequence,
        "created_at": event.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "clinic": event.clinic_id,
        "action": event.action,
        "outcome": event.outcome,
        "subject": event.subject_id,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": event.details,
    }


def canonical_bytes(event: AuditEvent) -> bytes:
    """Everything that identifies the event, in a fixed textual form (lookups.audit_verify)."""
    return canonical_content(hashed_content(event))


def compute_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical_bytes(event)).hexdigest()


def audit_record(
    *,
    actor: Actor,
    action: AuditAction | str,
    outcome: str = "",
    subject: Person | None = None,
    target: models.Model | None = None,
    clinic: Clinic | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Locks the chain head until the caller's transaction ends.

    ``action`` must be a member of the closed vocabulary (:class:`AuditAction`); anything else
    raises :class:`~lookups.audit_vocabulary.UnknownAuditAction` before any row is touched.
    """
    action = require_action(action).value
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            head = AuditChainHead.objects.create(pk=1)
            head = AuditChainHead.objects.select_for_update().get(pk=1)
        event = AuditEvent(
            sequence=head.last_sequence + 1,
            created_at=timezone.now(),
            actor=actor.user,
            actor_label=actor.label[:150],
            clinic=clinic,
            action=action,
            outcome=outcome,
            subject=subject,
            target_type=target._meta.label if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            ip=actor.ip,
            user_agent=actor.user_agent,
            details=_json_safe(details),
            prev_hash=head.last_hash,
        )
        event.hash = compute_hash(head.last_hash, event)
        event.save(force_insert=True)
        AuditChainHead.objects.filter(pk=1).update(last_sequence=event.sequence, last_hash=event.hash)
    return event


@dataclass(frozen=True)
class ChainBreak:
    sequence: int
    reason: str


def verify_chain() -> tuple[int, ChainBreak | None]:
    """Walk the whole chain in order. Returns (events checked, first break or None)."""
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    for event in AuditEvent.objects.order_by("sequence").iterator(chunk_size=2000):
        if event.sequence != expected_sequence:
            return checked, ChainBreak(event.sequence, f"expected sequence {expected_sequence}: a row is missing")
        if event.prev_hash != expected_prev:
            return checked, ChainBreak(event.sequence, "prev_hash does not match the previous event")
        if compute_hash(event.prev_hash, event) != event.hash:
            return checked, ChainBreak(event.sequence, "content does not match its hash: the row was altered")
        expected_prev = event.hash
        expected_sequence += 1
        checked += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_sequence != checked:
        return checked, ChainBreak(checked + 1, f"chain head says {head.last_sequence} events: the tail was removed")
    return checked, None
