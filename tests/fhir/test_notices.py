"""The elder's notice rules for laboratory results: a correction or withdrawal of a result that
someone else had already seen is told to the elder (who saw, which lab, when; never values),
in the elder's language, once; nothing when nobody else saw it."""

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from guardians import crypto, id_numbers
from guardians.models import Person
from lookups.audit import Actor, audit_record
from lookups.fhir import tokens
from lookups.models import AuditEvent, LookupRequest, Notice, TestResult
from lookups.oversight.notices import notice_send, render_notice, sms_params
from tests.helpers import start_lookup

from .test_delivery import post, report

NUMBER = id_numbers.make_valid("11010119450101789")


@pytest.fixture
def lab(clinic):
    sender, token = tokens.sender_create(name="City Lab", clinic_ids=[clinic.pk])
    sender.token = token
    return sender


@pytest.fixture
def lab_elder(elder):
    """The authorization's elder, with a known ID number and an e-mail address for notices."""
    Person.objects.filter(pk=elder.pk).update(id_number_hash=crypto.keyed_hash(NUMBER), notify_email="wang@example.org")
    elder.refresh_from_db()
    return elder


def deliver(client, lab, **kw):
    response = post(client, "/fhir/DiagnosticReport", report(number=NUMBER, **kw), lab.token)
    assert response.status_code in (200, 201), response.content
    return response


def guardian_views(guardian_client, elder):
    lookup = start_lookup(guardian_client, elder)
    LookupRequest.objects.filter(pk=lookup.pk).update(
        state=LookupRequest.State.GRANTED,
        granted_at=timezone.now(),
        grant_expires_at=timezone.now() + dt.timedelta(minutes=10),
    )
    assert guardian_client.get(reverse("lookups:results", args=[lookup.pk])).status_code == 200
    return lookup


def lab_notices():
    return Notice.objects.filter(kind__in=[Notice.Kind.RESULT_CORRECTED, Notice.Kind.RESULT_WITHDRAWN])


@pytest.mark.django_db
def test_a_correction_of_a_result_a_guardian_saw_is_told_to_the_elder(
    client, lab, guardian, guardian_client, authorization, lab_elder, settings
):
    settings.KINGUARD_NOTICE_LANGUAGE = "en"
    deliver(client, lab)
    guardian_views(guardian_client, lab_elder)
    deliver(client, lab, status="corrected", value="Positive")
    notice = lab_notices().get()
    assert notice.kind == Notice.Kind.RESULT_CORRECTED and notice.person == lab_elder
    assert notice.context["lab"] == "City Lab" and notice.context["viewers"] == guardian.full_name
    assert AuditEvent.objects.filter(action="notice.queued", details__kind="result_corrected").count() == 1
    subject, body, sms = render_notice(notice)
    assert "City Lab corrected one of your test results" in body and guardian.full_name in body
    for text in (subject, body, sms, str(notice.context), str(sms_params(notice))):
        assert "Positive" not in text and "Negative" not in text and NUMBER not in text  # never values or IDs
    assert notice_send(notice_id=notice.pk) == Notice.Status.SENT
    sent = [m for m in mail.outbox if m.to == ["wang@example.org"] and "corrected" in m.subject]
    assert len(sent) == 1 and "Positive" not in sent[0].body
    # the same correction delivered again changes nothing and tells nobody again
    deliver(client, lab, status="corrected", value="Positive")
    assert lab_notices().count() == 1


@pytest.mark.django_db
def test_a_withdrawal_of_a_seen_result_is_told_in_the_elders_language(
    client, lab, guardian, guardian_client, authorization, lab_elder, settings
):
    settings.KINGUARD_NOTICE_LANGUAGE = "zh-hans"
    deliver(client, lab)
    guardian_views(guardian_client, lab_elder)
    deliver(client, lab, status="entered-in-error")
    notice = lab_notices().get()
    assert notice.kind == Notice.Kind.RESULT_WITHDRAWN
    subject, body, _sms = render_notice(notice)
    assert "撤回" in subject and "City Lab" in body and "withdrew" not in body
    assert sms_params(notice)["lab"] == "City Lab" and sms_params(notice)["viewers"] == guardian.full_name


@pytest.mark.django_db
def test_no_notice_when_only_the_elder_saw_the_result(client, lab, guardian_client, authorization, lab_elder, staff):
    deliver(client, lab)
    result = TestResult.objects.get()
    # a results.viewed event of a lookup marked as the elder's own (self=True) does not count
    lookup = start_lookup(guardian_client, lab_elder)
    audit_record(
        actor=Actor.for_user(staff),
        action="results.viewed",
        outcome="shown",
        subject=lab_elder,
        target=lookup,
        details={"results": [result.pk], "self": True},
    )
    deliver(client, lab, status="corrected", value="Positive")
    deliver(client, lab, status="entered-in-error")
    assert not lab_notices().exists()


@pytest.mark.django_db
def test_no_notice_when_nobody_saw_the_result(client, lab, lab_elder):
    deliver(client, lab)
    deliver(client, lab, status="corrected", value="Positive")
    deliver(client, lab, status="entered-in-error")
    assert not lab_notices().exists()


@pytest.mark.django_db
def test_a_view_before_the_result_arrived_does_not_count(
    client, lab, guardian, guardian_client, authorization, lab_elder
):
    guardian_views(guardian_client, lab_elder)  # saw the older results, not this report
    deliver(client, lab)
    deliver(client, lab, status="corrected", value="Positive")
    assert not lab_notices().exists()
    assert Notice.objects.filter(kind=Notice.Kind.RESULTS_VIEWED).count() == 1  # the view itself was told


@pytest.mark.django_db
def test_a_guardians_view_of_lab_results_is_told_like_any_view(
    client, lab, guardian, guardian_client, authorization, lab_elder
):
    deliver(client, lab)
    guardian_views(guardian_client, lab_elder)
    viewed = Notice.objects.get(kind=Notice.Kind.RESULTS_VIEWED)
    assert viewed.person == lab_elder and viewed.context["viewer"] == guardian.full_name


@pytest.mark.django_db
def test_a_refused_correction_queues_no_notice(client, lab, guardian, guardian_client, authorization, lab_elder):
    deliver(client, lab)
    guardian_views(guardian_client, lab_elder)
    other = id_numbers.make_valid("11010119410101456")
    response = post(
        client, "/fhir/DiagnosticReport", report(number=other, status="corrected", value="Positive"), lab.token
    )
    assert response.status_code == 422  # a correction cannot change the patient
    assert not lab_notices().exists()
    assert not AuditEvent.objects.filter(action="notice.queued", details__kind="result_corrected").exists()
