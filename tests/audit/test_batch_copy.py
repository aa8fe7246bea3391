"""The batch append's fast path (issue 13): rows prepared before the head lock, one COPY on
PostgreSQL. Awkward values survive the COPY text format byte for byte and still chain;
references stay PROTECTed without database constraints; the caller's pending constraint
violations surface before the head is locked; two concurrent batches and single appends
keep one gap-free chain."""

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lookups.audit import Actor, AuditEntry, audit_record, audit_record_many, verify_chain
from lookups.models import AuditChainHead, AuditEvent, TestResult
from tests import factories
from tests.helpers import require_postgresql

AWKWARD = [
    "tab\there",
    "new\nline and carriage\rreturn",
    "back\\slash and \\N and \\t literally",
    "张秀英 — ünïcødé ✓",
    "",
    '"quoted", {braces}',
]


@pytest.mark.django_db
def test_awkward_values_round_trip_and_chain():
    actor = Actor(user=None, label="staff\twith\\tab\n张", ip="2001:db8::1", user_agent="UA \\N\t\r\n")
    entries = [
        AuditEntry(action="lookup.started", outcome=text[:30], details={"text": text, "nested": [text, None, 1.5]})
        for text in AWKWARD
    ]
    rows = audit_record_many(actor, entries)
    stored = {e.pk: e for e in AuditEvent.objects.filter(pk__in=[r.pk for r in rows])}
    for row in rows:
        again = stored[row.pk]
        got = (again.sequence, again.actor_label, again.ip, again.user_agent, again.outcome, again.details, again.hash)
        assert got == (row.sequence, row.actor_label, row.ip, row.user_agent, row.outcome, row.details, row.hash)
        assert again.created_at == row.created_at and again.prev_hash == row.prev_hash
    assert verify_chain() == (len(AWKWARD), None)


@pytest.mark.django_db
def test_references_without_db_constraints_are_still_protected():
    clinic = factories.ClinicFactory(name="Referenced only by the audit log")
    audit_record_many(Actor.system("test"), [AuditEntry(action="lookup.started", clinic=clinic)])
    with pytest.raises(ProtectedError):
        clinic.delete()


@pytest.mark.django_db
def test_pending_constraint_violations_surface_before_the_head_is_locked(staff, clinic):
    require_postgresql()
    audit_record(actor=Actor.system("test"), action="lookup.started")
    head = AuditChainHead.objects.get(pk=1).last_sequence
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries, pytest.raises(IntegrityError), transaction.atomic():
        TestResult.objects.create(  # a dangling elder: checked only at COMMIT unless forced earlier
            clinic=clinic,
            elder_id=987654321,
            kind="antigen",
            sampled_at=now,
            site="s",
            lab="l",
            result="r",
            reported_at=now,
        )
        audit_record_many(Actor.system("test"), [AuditEntry(action="lookup.started")] * 3)
    sql = [q["sql"].upper() for q in queries.captured_queries]
    assert any("SET CONSTRAINTS ALL IMMEDIATE" in q for q in sql)
    assert not any("FOR UPDATE" in q for q in sql)  # refused before the lock was taken
    assert AuditChainHead.objects.get(pk=1).last_sequence == head
    assert verify_chain() == (head, None)


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_and_single_appends_keep_one_gapless_chain():
    require_postgresql()
    audit_record(actor=Actor.system("test"), action="lookup.started")
    start = threading.Barrier(4)
    errors: list[BaseException] = []
    batches: dict[str, list[int]] = {}

    def batch(name: str) -> None:
        try:
            start.wait(10)
            with transaction.atomic():
                rows = audit_record_many(Actor.system(name), [AuditEntry(action="lookup.started")] * 400)
            batches[name] = [r.sequence for r in rows]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def singles() -> None:
        try:
            start.wait(10)
            for _ in range(25):
                audit_record(actor=Actor.system("single"), action="login.succeeded", outcome="ok")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=batch, args=(n,)) for n in ("a", "b", "c")]
    threads.append(threading.Thread(target=singles))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    total = 1 + 3 * 400 + 25
    assert verify_chain() == (total, None)
    assert AuditChainHead.objects.get(pk=1).last_sequence == total
    for sequences in batches.values():  # each batch is one contiguous run, in order
        assert sequences == list(range(sequences[0], sequences[0] + 400))


@pytest.mark.django_db
def test_a_batch_prepared_against_a_stale_head_is_rechained_under_the_lock(monkeypatch):
    """The chain computed before the lock is used only if the head did not move meanwhile."""
    from lookups import audit

    require_postgresql()
    first = audit_record(actor=Actor.system("test"), action="lookup.started")
    monkeypatch.setattr(audit, "_unlocked_head", lambda: (0, audit.GENESIS_HASH))  # as if read before `first`
    rows = audit_record_many(Actor.system("test"), [AuditEntry(action="lookup.started")] * 5)
    assert rows[0].sequence == first.sequence + 1 and rows[0].prev_hash == first.hash
    assert verify_chain() == (first.sequence + 5, None)
