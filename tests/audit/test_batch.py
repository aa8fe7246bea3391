"""Batched audit appends: ``audit_record_many`` appends in order under one head lock with one
bulk insert; the chain verifies after a batch (mixed with single appends), and a batch is all
or nothing: an unknown action, or a failure later in the caller's transaction, leaves no event
and the head where it was."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from lookups.audit import Actor, AuditEntry, audit_record, audit_record_many, verify_chain
from lookups.audit_vocabulary import UnknownAuditAction
from lookups.models import AuditChainHead, AuditEvent

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def _entries(n: int, **kwargs) -> list[AuditEntry]:
    return [AuditEntry(action="lookup.started", outcome="ok", details={"n": i}, **kwargs) for i in range(n)]


def _head() -> tuple[int, str]:
    head = AuditChainHead.objects.get(pk=1)
    return head.last_sequence, head.last_hash


def test_chain_verifies_after_batches_between_single_appends(clinic, elder):
    first = audit_record(actor=ACTOR, action="lookup.started")  # the fixtures' events come before
    rows = audit_record_many(ACTOR, _entries(250, subject=elder, clinic=clinic, target=elder))
    audit_record(actor=ACTOR, action="lookup.started")
    audit_record_many(ACTOR, _entries(3))
    base = first.sequence
    assert [r.sequence for r in rows] == list(range(base + 1, base + 251))
    assert rows[0].prev_hash == first.hash
    stored = AuditEvent.objects.get(sequence=base + 99)
    assert (stored.subject_id, stored.clinic_id, stored.target_id, stored.details) == (
        elder.pk,
        clinic.pk,
        str(elder.pk),
        {"n": 98},
    )
    assert verify_chain() == (base + 254, None)
    assert _head() == (base + 254, AuditEvent.objects.get(sequence=base + 254).hash)


def test_one_lock_and_one_insert_for_the_batch():
    audit_record(actor=ACTOR, action="lookup.started")
    with CaptureQueriesContext(connection) as queries:
        audit_record_many(ACTOR, _entries(500))
    sql = [q["sql"].upper() for q in queries.captured_queries]
    if connection.vendor == "postgresql":  # SQLite has no FOR UPDATE and splits big INSERTs
        assert sum("FOR UPDATE" in q for q in sql) == 1
        # the rows go in with one COPY (not in Django's query log), never one INSERT per row
        assert not any(q.startswith('INSERT INTO "LOOKUPS_AUDITEVENT"') for q in sql)
    assert sum("LOOKUPS_AUDITEVENT" in q for q in sql) <= 10  # not one statement per event
    assert sum(q.startswith('UPDATE "LOOKUPS_AUDITCHAINHEAD"') for q in sql) == 1
    assert verify_chain() == (501, None)


def test_an_unknown_action_refuses_the_whole_batch():
    audit_record(actor=ACTOR, action="lookup.started")
    before = _head()
    with pytest.raises(UnknownAuditAction):
        audit_record_many(ACTOR, [*_entries(5), AuditEntry(action="made.up"), *_entries(5)])
    assert AuditEvent.objects.count() == 1 and _head() == before


def test_a_failure_after_the_batch_rolls_all_of_it_back():
    audit_record(actor=ACTOR, action="lookup.started")
    before = _head()
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record_many(ACTOR, _entries(20))
        assert AuditEvent.objects.count() == 21
        raise RuntimeError("the bulk work the batch describes failed")
    assert AuditEvent.objects.count() == 1 and _head() == before
    assert verify_chain() == (1, None)


def test_an_empty_batch_writes_nothing():
    with CaptureQueriesContext(connection) as queries:
        assert audit_record_many(ACTOR, []) == []
    assert not queries.captured_queries


def test_values_that_look_like_the_placeholders_still_chain():
    """A row whose details mimic the placeholders is hashed in full, and nothing is mixed up."""
    tricky = [
        AuditEntry(action="lookup.started", details={"created_at": "kg-created-at-placeholder"}),
        AuditEntry(action="lookup.started", details={"sequence": -987_654_321_987_654_321}),
        AuditEntry(action="lookup.started", details={"ua": '"created_at":"kg-created-at-placeholder"'}),
    ]
    rows = audit_record_many(Actor(user=None, label="x", user_agent='"sequence":-987654321987654321'), tricky)
    assert verify_chain() == (3, None)
    assert AuditEvent.objects.get(pk=rows[0].pk).details == {"created_at": "kg-created-at-placeholder"}
