"""Corrections (amended/corrected), withdrawal (entered-in-error) and the guardian's note."""

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from guardians import crypto
from lookups.audit import Actor
from lookups.fhir import tokens
from lookups.fhir.models import LabReport, LabReportVersion, PendingLabResult
from lookups.models import AuditEvent, LookupRequest, TestResult
from tests.helpers import start_lookup

from .test_delivery import KNOWN, UNKNOWN, post, report, transaction_bundle


@pytest.fixture
def lab(clinic):
    sender, token = tokens.sender_create(name="City Lab", clinic_ids=[clinic.pk])
    sender.token = token
    return sender


@pytest.fixture
def elder_known(staff, clinic):
    from guardians import services as guardian_services

    return guardian_services.person_register(
        actor=Actor.for_user(staff), clinic=clinic, full_name="Wang Fang", id_number=KNOWN, is_elder=True
    )


def deliver(client, lab, **kw):
    return post(client, "/fhir/DiagnosticReport", report(**kw), lab.token)


def test_corrected_report_replaces_the_values_and_keeps_the_old_version(client, lab, elder_known):
    assert deliver(client, lab).status_code == 201
    first = TestResult.objects.get()
    response = deliver(client, lab, status="corrected", value="Positive")
    assert response.status_code == 200, response.content
    current = TestResult.objects.get()
    assert current.pk == first.pk and current.result == "Positive"
    row = LabReport.objects.get()
    assert (row.version, row.status) == (2, "corrected") and row.corrected_at is not None
    old = LabReportVersion.objects.get(report=row)
    assert old.version == 1 and old.status == "final"
    assert b"Negative" not in bytes(old.payload_ciphertext)
    assert json.loads(crypto.decrypt(old.payload_ciphertext))["rows"][0]["result"] == "Negative"
    event = AuditEvent.objects.get(action="fhir.report_corrected")
    assert (event.details["version_from"], event.details["version_to"]) == (1, 2)
    assert event.subject == elder_known
    text = json.dumps(event.details)
    assert "Negative" not in text and "Positive" not in text and KNOWN not in text


def test_repeated_correction_is_a_no_op(client, lab, elder_known):
    deliver(client, lab)
    assert deliver(client, lab, status="amended", value="Positive").status_code == 200
    again = deliver(client, lab, status="amended", value="Positive")
    assert again.status_code == 200
    assert "nothing changed" in json.dumps(again.json())
    assert LabReport.objects.get().version == 2
    assert AuditEvent.objects.filter(action="fhir.report_corrected").count() == 1


def test_final_redelivery_after_a_correction_changes_nothing(client, lab, elder_known):
    deliver(client, lab)
    deliver(client, lab, status="corrected", value="Positive")
    assert deliver(client, lab, value="Negative").status_code == 200
    assert TestResult.objects.get().result == "Positive"


def test_entered_in_error_withdraws_the_result(client, lab, elder_known):
    deliver(client, lab)
    response = deliver(client, lab, status="entered-in-error")
    assert response.status_code == 200, response.content
    assert not TestResult.objects.exists()
    row = LabReport.objects.get()
    assert row.outcome == LabReport.Outcome.WITHDRAWN and row.withdrawn_at is not None and row.version == 2
    assert LabReportVersion.objects.filter(report=row, version=1).exists()
    event = AuditEvent.objects.get(action="fhir.report_withdrawn")
    assert "Negative" not in json.dumps(event.details)
    # withdrawing again is a no-op; correcting a withdrawn report is refused
    assert deliver(client, lab, status="entered-in-error").status_code == 200
    assert AuditEvent.objects.filter(action="fhir.report_withdrawn").count() == 1
    assert deliver(client, lab, status="corrected", value="Positive").status_code == 422
    assert not TestResult.objects.exists()


def test_correction_and_withdrawal_of_a_waiting_result(client, lab, elder_known):
    deliver(client, lab, identifier="W", number=UNKNOWN)
    assert deliver(client, lab, identifier="W", number=UNKNOWN, status="corrected", value="Positive").status_code == 200
    pending = PendingLabResult.objects.get()
    assert json.loads(crypto.decrypt(pending.payload_ciphertext))["rows"][0]["result"] == "Positive"
    assert deliver(client, lab, identifier="W", number=UNKNOWN, status="entered-in-error").status_code == 200
    assert not PendingLabResult.objects.exists()


def test_correction_cannot_move_a_report_to_another_person(client, lab, elder_known):
    deliver(client, lab)
    response = deliver(client, lab, status="corrected", number=UNKNOWN, value="Positive")
    assert response.status_code == 422
    assert TestResult.objects.get().result == "Negative"


def test_correction_of_an_unknown_or_another_senders_report_is_refused_alike(client, lab, elder_known, clinic):
    deliver(client, lab)
    other, other_token = tokens.sender_create(name="Other Lab", clinic_ids=[clinic.pk])
    theirs = post(client, "/fhir/DiagnosticReport", report(status="corrected", value="Positive"), other_token)
    unknown = post(client, "/fhir/DiagnosticReport", report("NOPE", status="corrected", value="Positive"), other_token)
    assert theirs.status_code == unknown.status_code == 422
    assert theirs.content == unknown.content  # no oracle: another lab's identifier looks unknown
    withdraw = post(client, "/fhir/DiagnosticReport", report(status="entered-in-error"), other_token)
    assert withdraw.status_code == 422 and withdraw.content == theirs.content
    assert TestResult.objects.get().result == "Negative"
    row = LabReport.objects.get()
    assert row.version == 1 and not LabReportVersion.objects.exists()
    assert AuditEvent.objects.filter(action="fhir.delivery_refused").count() == 3


def test_unknown_correction_in_a_transaction_bundle_writes_nothing(client, lab, elder_known):
    bundle = transaction_bundle(report("NEW"), report("GHOST", status="amended"))
    response = post(client, "/fhir/", bundle, lab.token)
    assert response.status_code == 422
    assert not LabReport.objects.exists() and not TestResult.objects.exists()


def test_guardian_sees_the_current_version_and_the_correction_note(
    client, lab, guardian, guardian_client, authorization, elder, staff
):
    from guardians import id_numbers

    # the authorization's elder receives a lab report, then its correction
    number = id_numbers.make_valid("11010119450101789")
    from guardians.models import Person

    Person.objects.filter(pk=elder.pk).update(id_number_hash=crypto.keyed_hash(number))
    deliver(client, lab, number=number)
    deliver(client, lab, number=number, status="corrected", value="Positive")
    lookup = start_lookup(guardian_client, elder)  # bound to the guardian's session
    LookupRequest.objects.filter(pk=lookup.pk).update(
        state=LookupRequest.State.GRANTED,
        granted_at=timezone.now(),
        grant_expires_at=timezone.now() + dt.timedelta(minutes=10),
    )
    page = guardian_client.get(reverse("lookups:results", args=[lookup.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Positive" in body and "Negative" not in body
    assert "Corrected by the laboratory on" in body
    page_zh = guardian_client.get(reverse("lookups:results", args=[lookup.pk]), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert "由实验室更正" in page_zh.content.decode() and "Corrected by the laboratory" not in page_zh.content.decode()


def test_a_corrected_waiting_result_is_attached_with_its_current_values(client, lab, staff, clinic):
    from guardians import services as guardian_services

    deliver(client, lab, identifier="W", number=UNKNOWN)
    deliver(client, lab, identifier="W", number=UNKNOWN, status="corrected", value="Positive")
    person = guardian_services.person_register(
        actor=Actor.for_user(staff), clinic=clinic, full_name="Zhao Lei", id_number=UNKNOWN, is_elder=True
    )
    assert list(TestResult.objects.filter(elder=person).values_list("result", flat=True)) == ["Positive"]
    assert LabReport.objects.get().corrected_at is not None  # the guardian's note still shows


def test_metadata_documents_corrections(client):
    text = json.dumps(client.get("/fhir/metadata").json())
    assert "entered-in-error" in text and "corrected" in text


def test_correction_answers_are_identical_for_matched_and_waiting_reports(client, lab, elder_known):
    deliver(client, lab, identifier="M")
    deliver(client, lab, identifier="U", number=UNKNOWN)
    matched = deliver(client, lab, identifier="M", status="corrected", value="Positive")
    waiting = deliver(client, lab, identifier="U", number=UNKNOWN, status="corrected", value="Positive")
    assert matched.status_code == waiting.status_code == 200 and matched.content == waiting.content
    gone_m = deliver(client, lab, identifier="M", status="entered-in-error")
    gone_u = deliver(client, lab, identifier="U", number=UNKNOWN, status="entered-in-error")
    assert gone_m.content == gone_u.content


@pytest.mark.parametrize("status", ["corrected", "entered-in-error"])
def test_a_change_to_a_report_discarded_at_the_desk_is_answered_like_any_other(client, lab, staff, status):
    from lookups.fhir.services import pending_discard

    deliver(client, lab, identifier="D", number=UNKNOWN)
    deliver(client, lab, identifier="K", number=UNKNOWN)
    waiting = PendingLabResult.objects.get(report__identifier="urn:lab:city|D")
    pending_discard(
        actor=Actor.for_user(staff),
        pending_id=waiting.pk,
        reason="nobody registered within the period",
        now=timezone.now() + dt.timedelta(days=40),
    )
    discarded = deliver(client, lab, identifier="D", number=UNKNOWN, status=status, value="Positive")
    kept = deliver(client, lab, identifier="K", number=UNKNOWN, status=status, value="Positive")
    assert discarded.status_code == kept.status_code == 200, discarded.content
    assert discarded.content == kept.content  # nothing tells the lab what the desk did
    assert not TestResult.objects.exists()
    assert LabReport.objects.get(identifier="urn:lab:city|D").version == 2
