"""The audit log: one append-only, hash-chained sequence of events.

Invariant: events are appended only through :func:`audit_record` (one event) or
:func:`audit_record_many` (a batch, one bulk insert), which lock the single
``AuditChainHead`` row so sequence numbers are gapless and each event's ``prev_hash`` is
the previous event's ``hash``. Callers run it inside their own transaction, so an event
exists exactly when the change it describes was committed. The actor is always passed
explicitly (never thread-locals or signals, which miss Celery tasks and bulk writes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
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
        """The acting user and the *client's* address (``config.client_ip``: trusted proxies only)."""
        from config.client_ip import client_ip

        user = request.user if request.user.is_authenticated else None
        return cls(
            user=user,
            label=user.get_username() if user else "anonymous",
            ip=client_ip(request),
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
        head = _lock_head()
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
class AuditEntry:
    """One event for :func:`audit_record_many`: the same arguments as :func:`audit_record`."""

    action: AuditAction | str
    outcome: str = ""
    subject: Person | None = None
    target: models.Model | None = None
    clinic: Clinic | None = None
    details: dict[str, Any] | None = field(default=None)


#: rows per INSERT statement where COPY is not available (SQLite)
AUDIT_BULK_BATCH = 4000
# Placeholders for the two hashed fields only known under the head lock. Each row's canonical
# bytes are rendered with them *before* the lock; under it they are replaced by the real values.
_SEQUENCE_MARK = -987_654_321_987_654_321
_TIME_MARK = "kg-created-at-placeholder"
_SEQUENCE_BYTES = b'"sequence":%d' % _SEQUENCE_MARK
_TIME_BYTES = b'"created_at":"%s"' % _TIME_MARK.encode()
_COPY_COLUMNS = (
    "id",
    "sequence",
    "created_at",
    "actor_id",
    "actor_label",
    "clinic_id",
    "action",
    "outcome",
    "subject_id",
    "target_type",
    "target_id",
    "ip",
    "user_agent",
    "details",
    "prev_hash",
    "hash",
)


def _template(row: AuditEvent) -> bytes | None:
    """The row's canonical bytes with the sequence and time placeholders, or None when a
    placeholder does not occur exactly once (then the row is rendered in full under the lock)."""
    content = hashed_content(row) | {"sequence": _SEQUENCE_MARK, "created_at": _TIME_MARK}
    rendered = canonical_content(content)
    if rendered.count(_SEQUENCE_BYTES) != 1 or rendered.count(_TIME_BYTES) != 1:
        return None
    return rendered


def audit_record_many(actor: Actor, events: Iterable[AuditEntry]) -> list[AuditEvent]:
    """Append many events in order, all or none: one head lock, one bulk insert.

    Every action is checked against the closed vocabulary and every row is built and
    rendered (details serialised, targets resolved, canonical bytes with placeholders for
    sequence and time) *before* the head is locked. Under the lock only the time, the
    sequence numbers and the hashes are filled in, in order, the rows are written with one
    bulk insert (``COPY`` on PostgreSQL, ``bulk_create`` elsewhere) and the head moves once.
    The hashes are exactly those :func:`audit_record` would compute. The lock is held until
    the caller's transaction ends, so call this *last* in that transaction, after the bulk
    work it describes. An empty batch writes nothing and takes no lock.
    """
    rows = [
        AuditEvent(
            created_at=_EPOCH,
            actor=actor.user,
            actor_label=actor.label[:150],
            clinic=entry.clinic,
            action=require_action(entry.action).value,
            outcome=entry.outcome,
            subject=entry.subject,
            target_type=entry.target._meta.label if entry.target is not None else "",
            target_id=str(entry.target.pk) if entry.target is not None else "",
            ip=actor.ip,
            user_agent=actor.user_agent,
            details=_json_safe(entry.details),
        )
        for entry in events
    ]
    if not rows:
        return []
    templates = [_template(row) for row in rows]
    _reserve_ids(rows)
    with transaction.atomic():
        head = _lock_head()
        sequence, prev_hash = head.last_sequence, head.last_hash
        now = timezone.now()  # under the lock, so created_at never goes back along the chain
        time_bytes = b'"created_at":' + json.dumps(now.astimezone(dt.UTC).isoformat(timespec="microseconds")).encode()
        for row, template in zip(rows, templates, strict=True):
            sequence += 1
            row.sequence, row.created_at, row.prev_hash = sequence, now, prev_hash
            if template is None:
                row.hash = compute_hash(prev_hash, row)
            else:
                content = template.replace(_SEQUENCE_BYTES, b'"sequence":%d' % sequence).replace(
                    _TIME_BYTES, time_bytes
                )
                row.hash = hashlib.sha256(prev_hash.encode() + b"\n" + content).hexdigest()
            prev_hash = row.hash
        _insert(rows)
        for row in rows:
            row._state.adding, row._state.db = False, connection_alias()
        AuditChainHead.objects.filter(pk=1).update(last_sequence=sequence, last_hash=prev_hash)
    return rows


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def connection_alias() -> str:
    return transaction.get_connection().alias


def _reserve_ids(rows: list[AuditEvent]) -> None:
    """On PostgreSQL, draw the rows' primary keys before the lock (COPY returns none)."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [AuditEvent._meta.db_table, len(rows)],
        )
        for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
            row.pk = pk


def _insert(rows: list[AuditEvent]) -> None:
    """One bulk insert: COPY on PostgreSQL (no per-row SQL compilation under the lock)."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_create(rows, batch_size=AUDIT_BULK_BATCH)
        return
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                (
                    row.pk,
                    row.sequence,
                    row.created_at,
                    row.actor_id,
                    row.actor_label,
                    row.clinic_id,
                    row.action,
                    row.outcome,
                    row.subject_id,
                    row.target_type,
                    row.target_id,
                    row.ip,
                    row.user_agent,
                    json.dumps(row.details),
                    row.prev_hash,
                    row.hash,
                )
            )


def _lock_head() -> AuditChainHead:
    """The chain head, locked until the surrounding transaction ends (created if missing)."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        AuditChainHead.objects.create(pk=1)
        head = AuditChainHead.objects.select_for_update().get(pk=1)
    return head


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
