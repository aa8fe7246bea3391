"""The audit tables' guards, declared with django-pgtrigger (PostgreSQL): raw UPDATE, DELETE
and TRUNCATE of audit events are refused, and the chain head only moves forward. Each test
tries the forbidden operation as plain SQL and expects the database to refuse it."""

import re

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from lookups.audit import Actor, audit_record, verify_chain
from lookups.models import AuditChainHead, AuditEvent
from tests.helpers import require_postgresql

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain(db):
    require_postgresql()
    actor = Actor.system("test")
    return [audit_record(actor=actor, action="lookup.started", outcome="ok", details={"n": i}) for i in range(3)]


def refused(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        # the deferred FK checks of rows just inserted would make TRUNCATE fail for another reason
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_update_of_an_event_is_refused(chain):
    refused("UPDATE lookups_auditevent SET outcome = 'forged' WHERE sequence = %s", [chain[1].sequence])
    refused("UPDATE lookups_auditevent SET details = '{}'")
    assert verify_chain() == (3, None)


def test_raw_delete_of_an_event_is_refused(chain):
    refused("DELETE FROM lookups_auditevent WHERE sequence = %s", [chain[2].sequence])
    refused("DELETE FROM lookups_auditevent")
    assert AuditEvent.objects.count() == 3


def test_truncate_of_the_event_table_is_refused(chain):
    refused("TRUNCATE lookups_auditevent")
    refused("TRUNCATE lookups_auditevent, lookups_auditchainhead")
    refused("TRUNCATE lookups_auditevent CASCADE")
    assert verify_chain() == (3, None)


def test_head_cannot_move_backwards_or_stand_still(chain):
    last = chain[-1].sequence
    refused("UPDATE lookups_auditchainhead SET last_sequence = %s WHERE id = 1", [last - 1])
    refused("UPDATE lookups_auditchainhead SET last_sequence = 0, last_hash = %s WHERE id = 1", ["0" * 64])
    # same sequence, another hash: the tail re-pointed without appending
    refused("UPDATE lookups_auditchainhead SET last_hash = %s WHERE id = 1", ["" * 64])
    assert AuditChainHead.objects.get(pk=1).last_sequence == last
    audit_record(actor=Actor.system("test"), action="lookup.started")  # forward still works
    assert AuditChainHead.objects.get(pk=1).last_sequence == last + 1
    assert verify_chain() == (4, None)


def test_head_cannot_be_deleted_or_truncated(chain):
    refused("DELETE FROM lookups_auditchainhead")
    refused("TRUNCATE lookups_auditchainhead")
    assert AuditChainHead.objects.filter(pk=1).exists()


def test_pgtrigger_ls_lists_the_guards_installed(capsys):
    require_postgresql()
    call_command("pgtrigger", "ls")  # prints to sys.stdout, with colour codes
    output = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)
    lines = output.splitlines()
    for uri in (
        "lookups.AuditEvent:audit_event_append_only",
        "lookups.AuditEvent:audit_event_no_truncate",
        "lookups.AuditChainHead:audit_head_forward_only",
        "lookups.AuditChainHead:audit_head_no_delete",
        "lookups.AuditChainHead:audit_head_no_truncate",
    ):
        line = next((line for line in lines if line.endswith(uri)), "")
        assert "INSTALLED" in line and "ENABLED" in line and "UNINSTALLED" not in line, (uri, output)


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_still_flush(chain):
    """This test ends with pytest-django's flush (TRUNCATE): tests/conftest.py lifts the
    TRUNCATE guards for the test flush only; the guards stay installed afterwards."""
    assert AuditEvent.objects.count() == 3
    refused("TRUNCATE lookups_auditevent")
