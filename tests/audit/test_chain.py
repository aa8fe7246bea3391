"""Tamper evidence: altering, deleting or reordering a row is detected, naming the first
broken event; PostgreSQL refuses the raw UPDATE/DELETE; the model and admin refuse changes;
the periodic check raises the alarm once."""

import logging
from contextlib import contextmanager

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from lookups import tasks
from lookups.audit import Actor, audit_record, verify_chain
from lookups.models import AnomalyFlag, AuditChainHead, AuditEvent
from lookups.oversight.services import audit_chain_check
from tests.helpers import otp_login, require_postgresql

pytestmark = pytest.mark.django_db
TABLE = AuditEvent._meta.db_table
GUARDED = (TABLE, AuditChainHead._meta.db_table)


@pytest.fixture
def chain(db):
    actor = Actor.system("test")
    return [audit_record(actor=actor, action="lookup.started", outcome="ok", details={"n": i}) for i in range(6)]


@contextmanager
def tamperable():
    """On PostgreSQL, lift the audit tables' triggers for the test (as the table owner could)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Deferred foreign-key checks of the rows just inserted must run before ALTER TABLE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in GUARDED:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                for table in GUARDED:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    else:
        yield


def raw(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def verify_command() -> tuple[int, str]:
    from io import StringIO

    out, err = StringIO(), StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code), err.getvalue()
    return 0, out.getvalue()


def test_intact_chain_verifies(chain):
    assert verify_chain() == (6, None)
    code, output = verify_command()
    assert code == 0 and "6 events verified" in output


def test_altered_row_is_detected_naming_it(chain):
    with tamperable():
        raw("UPDATE lookups_auditevent SET outcome = %s WHERE sequence = %s", ["denied", chain[3].sequence])
    checked, broken = verify_chain()
    assert broken.sequence == chain[3].sequence and "altered" in broken.reason and checked == 3
    code, output = verify_command()
    assert code == 1 and f"#{chain[3].sequence}" in output


def test_altered_details_are_detected(chain):
    with tamperable():
        raw("UPDATE lookups_auditevent SET details = %s WHERE sequence = %s", ['{"n": 99}', chain[1].sequence])
    assert verify_chain()[1].sequence == chain[1].sequence


def test_deleted_row_is_detected_at_the_next_event(chain):
    with tamperable():
        raw("DELETE FROM lookups_auditevent WHERE sequence = %s", [chain[2].sequence])
    broken = verify_chain()[1]
    assert broken.sequence == chain[3].sequence and "missing" in broken.reason
    code, output = verify_command()
    assert code == 1 and f"#{chain[3].sequence}" in output


def test_deleted_tail_is_detected(chain):
    with tamperable():
        raw("DELETE FROM lookups_auditevent WHERE sequence = %s", [chain[5].sequence])
    broken = verify_chain()[1]
    assert broken.sequence == chain[5].sequence and "tail" in broken.reason


def test_reordered_rows_are_detected(chain):
    a, b = chain[2].sequence, chain[4].sequence
    with tamperable():
        raw("UPDATE lookups_auditevent SET sequence = -1 WHERE sequence = %s", [a])
        raw("UPDATE lookups_auditevent SET sequence = %s WHERE sequence = %s", [a, b])
        raw("UPDATE lookups_auditevent SET sequence = %s WHERE sequence = -1", [b])
    broken = verify_chain()[1]
    assert broken.sequence == a
    code, output = verify_command()
    assert code == 1 and f"#{a}" in output


def test_postgresql_trigger_refuses_raw_update_and_delete(chain):
    require_postgresql()  # the append-only trigger exists on PostgreSQL only
    refused = (
        "UPDATE lookups_auditevent SET outcome = 'x' WHERE sequence = %s",
        "DELETE FROM lookups_auditevent WHERE sequence = %s",
    )
    for sql in refused:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            raw(sql, [chain[0].sequence])
    assert verify_chain() == (6, None)


def test_model_refuses_changes(chain):
    event = AuditEvent.objects.get(pk=chain[0].pk)
    event.outcome = "denied"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    assert verify_chain()[1] is None


def test_admin_refuses_changes_even_to_a_superuser(client, superuser, chain):
    otp_login(client, superuser)
    change_url = reverse("admin:lookups_auditevent_change", args=[chain[0].pk])
    response = client.get(change_url)
    assert response.status_code == 200 and b'name="_save"' not in response.content
    assert client.post(change_url, {"outcome": "denied"}).status_code == 403
    assert (
        client.post(reverse("admin:lookups_auditevent_delete", args=[chain[0].pk]), {"post": "yes"}).status_code == 403
    )
    assert client.get(reverse("admin:lookups_auditevent_add")).status_code == 403
    response = client.post(
        reverse("admin:lookups_auditevent_changelist"), {"action": "delete_selected", "_selected_action": [chain[0].pk]}
    )
    assert AuditEvent.objects.filter(pk=chain[0].pk).exists()
    assert verify_chain()[1] is None


def test_periodic_check_alerts_once(chain, settings, caplog, django_capture_on_commit_callbacks):
    settings.ADMINS = [("Ops", "ops@example.org")]
    settings.KINGUARD_ALERT_EMAILS = ["audit@example.org"]
    assert tasks.verify_audit_chain() == "intact"
    assert not mail.outbox
    with tamperable():
        raw("UPDATE lookups_auditevent SET actor_label = 'someone-else' WHERE sequence = %s", [chain[4].sequence])

    with caplog.at_level(logging.CRITICAL, logger="kinguard.audit"):
        for _ in range(2):  # the second run finds the same break: no new alarm
            with django_capture_on_commit_callbacks(execute=True):
                assert tasks.verify_audit_chain() == f"broken at #{chain[4].sequence}"
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 2 and all(f"#{chain[4].sequence}" in message for message in critical)
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["audit@example.org", "ops@example.org"]
    assert f"#{chain[4].sequence}" in mail.outbox[0].subject
    alarms = AuditEvent.objects.filter(action="audit.chain_broken")
    assert alarms.count() == 1 and alarms.get().details["sequence"] == chain[4].sequence
    flag = AnomalyFlag.objects.get(rule=AnomalyFlag.Rule.CHAIN_BROKEN)
    assert flag.key == f"sequence:{chain[4].sequence}" and flag.status == AnomalyFlag.Status.OPEN


def test_chain_check_service_returns_the_break(chain):
    assert audit_chain_check() is None
    with tamperable():
        raw("DELETE FROM lookups_auditevent WHERE sequence = %s", [chain[0].sequence])
    assert audit_chain_check().sequence == chain[1].sequence
