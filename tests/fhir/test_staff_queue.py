"""The desk queue of results waiting for a registration: scope, no values, discard rules."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from lookups.fhir import tokens
from lookups.fhir.models import LabReport, PendingLabResult
from lookups.models import AuditEvent
from tests import factories
from tests.helpers import verified_client

from .test_delivery import UNKNOWN, post, report


@pytest.fixture
def waiting(client, clinic):
    sender, token = tokens.sender_create(name="City Lab", clinic_ids=[clinic.pk])
    assert post(client, "/fhir/DiagnosticReport", report("W-1", UNKNOWN, value="Positive"), token).status_code == 201
    pending = PendingLabResult.objects.get()
    pending.token = token
    return pending


def age(pending, days):
    PendingLabResult.objects.filter(pk=pending.pk).update(received_at=timezone.now() - dt.timedelta(days=days))


def discard(client, pending, reason="Moved away, never registered here"):
    return client.post(reverse("fhir_staff:pending_discard", args=[pending.pk]), {"reason": reason})


def test_queue_lists_sender_kind_and_masked_id_without_values(staff, waiting):
    page = verified_client(staff).get(reverse("fhir_staff:pending"))
    body = page.content.decode()
    assert page.status_code == 200
    assert "City Lab" in body and "Nucleic acid (PCR)" in body
    assert UNKNOWN[:6] + "********" + UNKNOWN[-4:] in body
    assert UNKNOWN not in body and "Positive" not in body


def test_queue_is_translated(staff, waiting):
    page = verified_client(staff).get(reverse("fhir_staff:pending"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    body = page.content.decode()
    assert "等待登记的结果" in body and "Results waiting for a registration" not in body


def test_another_clinics_staff_neither_sees_nor_discards(other_clinic, waiting):
    other = verified_client(factories.make_staff(other_clinic))
    age(waiting, 40)
    assert "City Lab" not in other.get(reverse("fhir_staff:pending")).content.decode()
    assert discard(other, waiting).status_code == 404
    assert discard(other, type("P", (), {"pk": 999999})()).status_code == 404  # same as a missing one
    assert PendingLabResult.objects.filter(pk=waiting.pk).exists()
    assert not AuditEvent.objects.filter(action="fhir.pending_discarded").exists()


def test_auditor_may_not_use_the_desk_queue(clinic, waiting):
    auditor = verified_client(factories.make_staff(clinic, role="auditor"))
    assert auditor.get(reverse("fhir_staff:pending")).status_code == 403
    age(waiting, 40)
    assert discard(auditor, waiting).status_code == 403
    assert PendingLabResult.objects.filter(pk=waiting.pk).exists()


def test_discard_before_the_retention_period_is_refused(staff, waiting, settings):
    settings.KINGUARD_PENDING_RESULT_RETENTION_DAYS = 30
    age(waiting, 29)
    response = discard(verified_client(staff), waiting)
    assert response.status_code == 400
    assert "can be discarded from" in response.content.decode()
    assert PendingLabResult.objects.filter(pk=waiting.pk).exists()


@pytest.mark.parametrize("reason", ["", "   ", "no"])
def test_discard_without_a_reason_is_refused(staff, waiting, reason):
    age(waiting, 40)
    response = discard(verified_client(staff), waiting, reason=reason)
    assert response.status_code == 400
    assert PendingLabResult.objects.filter(pk=waiting.pk).exists()


def test_anonymous_and_unverified_are_refused(client, staff, waiting):
    age(waiting, 40)
    assert client.get(reverse("fhir_staff:pending")).status_code == 302
    assert discard(client, waiting).status_code == 302
    client.force_login(staff)  # signed in, but no OTP in this session
    assert discard(client, waiting).status_code == 302
    assert PendingLabResult.objects.filter(pk=waiting.pk).exists()


def test_discard_after_retention_is_audited_and_redelivery_stays_a_no_op(client, staff, waiting):
    age(waiting, 31)
    response = discard(verified_client(staff), waiting)
    assert response.status_code == 302
    assert not PendingLabResult.objects.exists()
    assert LabReport.objects.get().outcome == LabReport.Outcome.DISCARDED
    event = AuditEvent.objects.get(action="fhir.pending_discarded")
    assert event.details["reason"] == "Moved away, never registered here"
    assert event.details["sender"] == "City Lab" and "Positive" not in str(event.details)
    assert UNKNOWN not in str(event.details)
    again = post(client, "/fhir/DiagnosticReport", report("W-1", UNKNOWN, value="Positive"), waiting.token)
    assert again.status_code == 200 and not PendingLabResult.objects.exists()


def test_get_on_discard_is_refused(staff, waiting):
    age(waiting, 40)
    assert verified_client(staff).get(reverse("fhir_staff:pending_discard", args=[waiting.pk])).status_code == 405
    assert PendingLabResult.objects.filter(pk=waiting.pk).exists()
