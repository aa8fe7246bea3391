"""Attack tests for the laboratory admin: clinic scope, read-only, no values, no other clinic named."""

import pytest
from django.test import Client
from django.urls import reverse

from guardians import id_numbers
from guardians import services as guardian_services
from lookups.audit import Actor
from lookups.fhir import tokens
from lookups.fhir.models import LabReport, LabReportVersion, LabSender, PendingLabResult
from tests import factories
from tests.guardians.test_admin import _otp_login

from .test_delivery import post, report

pytestmark = pytest.mark.django_db

VALUE, CORRECTED = "Detected-7731", "Detected-9942"  # values that must never appear in the admin


def lab_objects(clinic, name: str, digits: str) -> dict:
    """At ``clinic``: a recorded report with an earlier version, a waiting result, their sender."""
    staff = factories.make_staff(clinic)
    known = id_numbers.make_valid(f"1101011940{digits}")
    unknown = id_numbers.make_valid(f"1101011941{digits}")
    guardian_services.person_register(
        actor=Actor.for_user(staff), clinic=clinic, full_name="Wang Fang", id_number=known, is_elder=True
    )
    sender, token = tokens.sender_create(name=name, clinic_ids=[clinic.pk])
    lab = Client()
    for body in (
        report("R-1", number=known, value=VALUE),
        report("R-1", number=known, value=CORRECTED, status="corrected"),
        report("W-1", number=unknown, value=VALUE),
    ):
        assert post(lab, "/fhir/DiagnosticReport", body, token).status_code in (200, 201)
    recorded = LabReport.objects.get(sender=sender, identifier="urn:lab:city|R-1")
    return {
        "lookups_labsender": sender,
        "lookups_labreport": recorded,
        "lookups_labreportversion": LabReportVersion.objects.get(report=recorded),
        "lookups_pendinglabresult": PendingLabResult.objects.get(sender=sender),
        "_numbers": (known, unknown),
    }


@pytest.mark.parametrize("role", ["staff", "manager", "auditor"])
def test_another_clinics_lab_objects_are_absent_and_404(client, clinic, other_clinic, role):
    theirs = lab_objects(other_clinic, "Hill Lab", "0202123")
    _otp_login(client, factories.make_staff(clinic, role=role))
    for name, obj in theirs.items():
        if name.startswith("_"):
            continue
        listing = client.get(reverse(f"admin:{name}_changelist"))
        assert listing.status_code == 200, name
        assert reverse(f"admin:{name}_change", args=[obj.pk]) not in listing.content.decode(), name
        for view in ("change", "delete", "history"):
            response = client.get(reverse(f"admin:{name}_{view}", args=[obj.pk]))
            assert response.status_code == 404, (name, view, response.status_code)


@pytest.mark.parametrize("role", ["manager", "auditor"])
def test_own_lab_objects_are_listed_read_only_without_values(client, clinic, role):
    ours = lab_objects(clinic, "City Lab", "0101123")
    _otp_login(client, factories.make_staff(clinic, role=role))
    known, unknown = ours["_numbers"]
    pending = ours["lookups_pendinglabresult"]
    secrets = [VALUE, CORRECTED, known, unknown, pending.id_number_hash, ours["lookups_labsender"].token_hash]
    for name, obj in ours.items():
        if name.startswith("_"):
            continue
        url = reverse(f"admin:{name}_change", args=[obj.pk])
        listing = client.get(reverse(f"admin:{name}_changelist"))
        assert url in listing.content.decode(), name
        page = client.get(url)
        assert page.status_code == 200, name
        for text in (listing.content.decode(), page.content.decode()):
            assert 'name="_save"' not in text, name
            for secret in secrets:
                assert secret not in text, (name, secret)
        assert client.post(url, {}).status_code == 403, name
        assert client.get(reverse(f"admin:{name}_delete", args=[obj.pk])).status_code == 403, name
        assert client.get(reverse(f"admin:{name}_add")).status_code == 403, name
    report_page = client.get(reverse("admin:lookups_labreport_change", args=[ours["lookups_labreport"].pk]))
    assert "corrected" in report_page.content.decode()  # the version history is there, as metadata
    assert pending.id_number_masked in client.get(reverse("admin:lookups_pendinglabresult_changelist")).content.decode()


def test_a_sender_serving_two_clinics_names_only_the_readers_clinic(client, clinic, other_clinic):
    sender, _token = tokens.sender_create(name="Regional Lab", clinic_ids=[clinic.pk, other_clinic.pk])
    _otp_login(client, factories.make_staff(clinic, role="auditor"))
    listing = client.get(reverse("admin:lookups_labsender_changelist")).content.decode()
    assert listing.count(reverse("admin:lookups_labsender_change", args=[sender.pk])) == 1  # once, not per clinic
    page = client.get(reverse("admin:lookups_labsender_change", args=[sender.pk])).content.decode()
    assert clinic.name in page and other_clinic.name not in page


def test_superuser_sees_every_clinics_sender(client, clinic, other_clinic):
    sender, _token = tokens.sender_create(name="Regional Lab", clinic_ids=[clinic.pk, other_clinic.pk])
    _otp_login(client, factories.make_staff(clinic, is_superuser=True))
    page = client.get(reverse("admin:lookups_labsender_change", args=[sender.pk])).content.decode()
    assert clinic.name in page and other_clinic.name in page
    assert LabSender.objects.count() == 1
