"""``RemovalRequest`` is a domain table (not audit rows queried as one); authorization changes
record old and new values in their audit detail."""

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.utils import timezone

from guardians import selectors, services
from guardians.models import Authorization, RemovalRequest
from lookups.audit import Actor
from lookups.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def asking(staff, manager, clinic):
    elder = factories.make_person(staff, clinic, "Asking Elder", elder=True, login=True)
    guardian = factories.make_person(staff, clinic, "Unwanted Guardian", guardian=True)
    return elder, factories.make_active_authorization(staff, manager, guardian, elder)


def test_removal_request_is_a_row_recorded_once(asking):
    elder, authorization = asking
    actor = Actor.for_user(elder.user)
    assert services.authorization_removal_request(actor=actor, authorization_id=authorization.pk, note=" Please ")
    assert not services.authorization_removal_request(actor=actor, authorization_id=authorization.pk, note="again")
    request = RemovalRequest.objects.get()
    assert (request.authorization, request.requested_by, request.note) == (authorization, elder.user, "Please")
    assert AuditEvent.objects.filter(action="authorization.removal_requested").count() == 1
    assert selectors.removal_requested_ids([authorization.pk]) == {authorization.pk}
    assert Authorization.objects.filter(selectors.removal_requested_q()).get() == authorization


def test_the_desk_list_reads_the_table_not_the_audit_log(asking):
    """An audit row alone (e.g. forged or from elsewhere) no longer makes a removal request."""
    elder, authorization = asking
    from lookups.audit import audit_record

    audit_record(
        actor=Actor.for_user(elder.user),
        action="authorization.removal_requested",
        outcome="requested",
        subject=elder,
        target=authorization,
        clinic=authorization.clinic,
    )
    assert not Authorization.objects.filter(selectors.removal_requested_q()).exists()


def test_migration_backfills_requests_from_audit_rows(asking):
    elder, authorization = asking
    services.authorization_removal_request(
        actor=Actor.for_user(elder.user), authorization_id=authorization.pk, note="From the log"
    )
    RemovalRequest.objects.all().delete()
    migration = importlib.import_module("guardians.migrations.0006_removalrequest")
    migration.backfill_from_audit(apps, None)
    migration.backfill_from_audit(apps, None)  # idempotent
    request = RemovalRequest.objects.get()
    assert (request.authorization_id, request.requested_by_id, request.note) == (
        authorization.pk,
        elder.user.pk,
        "From the log",
    )


def _at(value) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)


def test_suspend_and_renew_record_old_and_new_values(authorization, manager):
    actor = Actor.for_user(manager)
    old_end = authorization.valid_until
    services.authorization_suspend(
        actor=actor, authorization_id=authorization.pk, reason="Checking", requested_by="clinic"
    )
    suspended = AuditEvent.objects.get(action="authorization.suspended")
    assert (suspended.details["old_status"], suspended.details["new_status"]) == ("active", "suspended")
    new_end = timezone.now() + dt.timedelta(days=400)
    services.authorization_renew(actor=actor, authorization_id=authorization.pk, valid_until=new_end)
    renewed = AuditEvent.objects.get(action="authorization.renewed")
    assert _at(renewed.details["old_valid_until"]) == old_end
    assert _at(renewed.details["valid_until"]) == new_end
    assert (renewed.details["old_status"], renewed.details["new_status"]) == ("suspended", "active")
