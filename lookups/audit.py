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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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
# bytes are rendered with them *before* the lock and cut into three pieces around them; under
# the lock the real time and sequence are put between the pieces.
_SEQUENCE_MARK = -987_654_321_987_654_321
_TIME_MARK = "kg-created-at-placeholder"
_SEQUENCE_BYTES = b'"sequence":%d' % _SEQUENCE_MARK
_TIME_BYTES = b'"created_at":"%s"' % _TIME_MARK.encode()
# COPY columns: those known before the lock first, so each row's line is one prepared prefix
# plus the four values filled in under the lock (created_at, sequence, prev_hash, hash).
_COPY_PREPARED = (
    "id",
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
)
_COPY_COLUMNS = (*_COPY_PREPARED, "created_at", "sequence", "prev_hash", "hash")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _pieces(row: AuditEvent) -> tuple[bytes, bytes, bytes] | None:
    """The row's canonical bytes before the time, between time and sequence, after the
    sequence; None when a placeholder does not occur exactly once where expected (then the
    row is rendered in full under the lock)."""
    content = hashed_content(row) | {"sequence": _SEQUENCE_MARK, "created_at": _TIME_MARK}
    rendered = canonical_content(content)
    if rendered.count(_SEQUENCE_BYTES) != 1 or rendered.count(_TIME_BYTES) != 1:
        return None
    at_time, at_sequence = rendered.index(_TIME_BYTES), rendered.index(_SEQUENCE_BYTES)
    if at_time > at_sequence:  # keys are sorted: created_at always precedes sequence
        return None
    return (
        rendered[:at_time],
        rendered[at_time + len(_TIME_BYTES) : at_sequence],
        rendered[at_sequence + len(_SEQUENCE_BYTES) :],
    )


def _copy_text(value: Any) -> str:
    """One value in COPY's text format (NULL as \\N; backslash, tab and newlines escaped)."""
    return "\\N" if value is None else str(value).translate(_COPY_ESCAPES)


def _copy_prefix(row: AuditEvent) -> bytes:
    values = (
        row.pk,
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
    )
    return ("\t".join(_copy_text(v) for v in values) + "\t").encode()


def audit_record_many(actor: Actor, events: Iterable[AuditEntry]) -> list[AuditEvent]:
    """Append many events in order, all or none: one head lock, one bulk insert.

    Everything that does not depend on the chain head happens *before* the head is locked:
    every action is checked against the closed vocabulary, every row is built and rendered
    (details serialised, targets resolved, canonical bytes cut around the sequence and the
    time), and on PostgreSQL the primary keys are drawn, each row's COPY line is prepared
    and the caller's pending deferred constraints are checked (so COMMIT has none left to
    check while the lock is held), and the whole chain is computed against the head as last
    committed. Under the lock, if the head has not moved, that COPY data is sent as it is;
    otherwise (and always elsewhere) the time, the sequence numbers and the hashes are filled
    in against the locked head, in order. The rows go in with one bulk insert (one ``COPY``
    on PostgreSQL, ``bulk_create`` elsewhere) and the head moves once. The hashes
    are exactly those :func:`audit_record` would compute. The lock is held until the
    caller's transaction ends, so call this *last* in that transaction, after the bulk work
    it describes. An empty batch writes nothing and takes no lock.
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
    pieces = [_pieces(row) for row in rows]
    with transaction.atomic():
        connection = transaction.get_connection()
        copy_lines: list[bytes] | None = None
        if connection.vendor == "postgresql":
            _reserve_ids(rows)
            copy_lines = [_copy_prefix(row) for row in rows]
            connection.check_constraints()  # SET CONSTRAINTS ALL IMMEDIATE, then DEFERRED again
        # On PostgreSQL the whole chain is computed against the head as last committed, still
        # outside the lock; under it, if the head has not moved since, the COPY data is sent as
        # is. Otherwise (someone appended meanwhile) it is recomputed against the locked head.
        guess = _unlocked_head() if copy_lines is not None else None
        ready = None
        if guess is not None:
            ready = _chain(rows, pieces, *guess, timezone.now(), copy_lines=copy_lines)
        head = _lock_head()
        if ready is not None and (head.last_sequence, head.last_hash) == guess:
            sequence, last_hash, chunks = ready
            with _copy() as write:
                write(b"".join(chunks))
        elif copy_lines is None:
            now = timezone.now()  # under the lock, so created_at never goes back along the chain
            sequence, last_hash, _ = _chain(rows, pieces, head.last_sequence, head.last_hash, now)
            AuditEvent.objects.bulk_create(rows, batch_size=AUDIT_BULK_BATCH)
        else:
            with _copy() as write:  # the server inserts each chunk while the next is hashed
                sequence, last_hash, _ = _chain(
                    rows, pieces, head.last_sequence, head.last_hash, timezone.now(), copy_lines=copy_lines, write=write
                )
        for row in rows:
            row._state.adding, row._state.db = False, connection.alias
        AuditChainHead.objects.filter(pk=1).update(last_sequence=sequence, last_hash=last_hash)
    return rows


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: rows per COPY chunk sent while the following rows are hashed
_COPY_CHUNK = 500


def _chain(
    rows: list[AuditEvent],
    pieces: list[tuple[bytes, bytes, bytes] | None],
    last_sequence: int,
    last_hash: str,
    now: dt.datetime,
    *,
    copy_lines: list[bytes] | None = None,
    write: Callable[[bytes], None] | None = None,
) -> tuple[int, str, list[bytes]]:
    """Number, time and hash the rows in order after the head (``last_sequence``,
    ``last_hash``), and with ``copy_lines`` render their COPY data: sent in chunks to
    ``write`` as it goes, or returned. Returns (new last sequence, new last hash, COPY data).

    Correct only under the head lock, or when the head is found unchanged under it; a
    ``created_at`` taken before the lock is then still after the previous event's (that
    event committed before its head was read)."""
    sequence, prev_hash = last_sequence, last_hash
    iso = now.astimezone(dt.UTC).isoformat(timespec="microseconds")
    time_bytes, copy_time = b'"created_at":' + json.dumps(iso).encode(), iso.encode() + b"\t"
    out: list[bytes] = []
    chunks: list[bytes] = []
    for index, row in enumerate(rows):
        sequence += 1
        row.sequence, row.created_at, row.prev_hash = sequence, now, prev_hash
        piece = pieces[index]
        if piece is None:
            row.hash = compute_hash(prev_hash, row)
        else:
            before, between, after = piece
            seq = b'"sequence":%d' % sequence
            row.hash = hashlib.sha256(
                b"".join((prev_hash.encode(), b"\n", before, time_bytes, between, seq, after))
            ).hexdigest()
        prev_hash = row.hash
        if copy_lines is not None:
            out += (copy_lines[index], copy_time, b"%d\t" % sequence, row.prev_hash.encode(), b"\t")
            out += (prev_hash.encode(), b"\n")
            if write is not None and (index + 1) % _COPY_CHUNK == 0:
                write(b"".join(out))
                out.clear()
    if out and write is not None:
        write(b"".join(out))
    elif out:
        chunks.append(b"".join(out))
    return sequence, prev_hash, chunks


def _unlocked_head() -> tuple[int, str] | None:
    """The chain head as last committed (no lock): a guess to prepare a batch against."""
    return AuditChainHead.objects.filter(pk=1).values_list("last_sequence", "last_hash").first()


def _reserve_ids(rows: list[AuditEvent]) -> None:
    """On PostgreSQL, draw the rows' primary keys before the lock (COPY returns none)."""
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [AuditEvent._meta.db_table, len(rows)],
        )
        for row, (pk,) in zip(rows, cursor.fetchall(), strict=True):
            row.pk = pk


@contextmanager
def _copy() -> Iterator[Callable[[bytes], None]]:
    """The one bulk insert on PostgreSQL: one COPY of the prepared lines (no per-row SQL)."""
    table = AuditEvent._meta.db_table
    with (
        transaction.get_connection().cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy,
    ):
        yield copy.write


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
