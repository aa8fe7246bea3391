"""Another clinic's staff reach nothing of this clinic: every staff URL, GET and POST."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from guardians.models import Person
from guardians.staff.urls import urlpatterns
from lookups.models import TestResult
from tests import factories

pytestmark = pytest.mark.django_db

# URL name -> how to address this clinic's object (path kwargs and/or query string).
OBJECT_URLS = {
    "person": "person",
    "password_link": "guardian",
    "account_create": "person",
    "otp_enroll": "guardian",
    "backup_codes": "guardian",
    "face_consent": "guardian",
    "face_enroll": "guardian",
    "face_withdraw": "guardian",
    "authorization": "authorization",
    "authorization_approve": "authorization",
    "authorization_revoke": "authorization",
    "authorization_suspend": "authorization",
    "authorization_renew": "authorization",
    "result_photo": "result",
    "authorization_new": "?elder",
    "result_new": "?elder",
}
# Pages without an object: lists and forms, scoped to the staff member's own clinics.
SCOPED_PAGES = {"home", "people", "register_elder", "register_guardian", "authorizations", "results", "results_import"}
NOT_STAFF_PAGES = {"login", "logout", "reverify"}
# Addressed by a signed token / random key bound to the uploader: another clinic's staff are
# refused there by tests/staff/test_results_import.py (confirm → 400, status → 404).
STAGED_IMPORT_PAGES = {"results_import_confirm", "results_import_status"}


def test_every_staff_url_is_covered_here():
    names = {pattern.name for pattern in urlpatterns}
    assert names == set(OBJECT_URLS) | SCOPED_PAGES | NOT_STAFF_PAGES | STAGED_IMPORT_PAGES


@pytest.fixture
def records(staff, manager, clinic, guardian, elder, authorization):
    from guardians import services
    from lookups.audit import Actor

    photo = SimpleUploadedFile("p.png", b"", content_type="image/png")
    result = factories.make_result(staff, elder)
    TestResult.objects.filter(pk=result.pk).update(sampling_photo="sampling/x.png")
    del photo
    services.face_consent_record(actor=Actor.for_user(staff), person=guardian, consent_text="ok", given_by="person")
    return {"person": elder, "guardian": guardian, "authorization": authorization, "result": result}


def _url(name, records):
    target = OBJECT_URLS[name]
    if target.startswith("?"):
        return reverse(f"staff:{name}") + f"?elder={records['person'].public_id}"
    if target in ("person", "guardian"):
        return reverse(f"staff:{name}", args=[records[target].public_id])
    return reverse(f"staff:{name}", args=[records[target].pk])


@pytest.mark.parametrize("name", sorted(OBJECT_URLS))
def test_other_clinics_staff_get_404(name, records, other_client):
    url = _url(name, records)
    assert other_client.get(url).status_code in (404, 405)
    post = other_client.post(url, {"reason": "curious", "action": "start", "revoke-reason": "x"})
    assert post.status_code == 404
    if name in ("authorization_new", "result_new"):
        post = other_client.post(reverse(f"staff:{name}"), {"elder": str(records["person"].public_id)})
        assert post.status_code == 404


@pytest.mark.parametrize("name", sorted(OBJECT_URLS))
def test_own_clinic_staff_reach_them(name, records, staff_client):
    response = staff_client.get(_url(name, records))
    assert response.status_code in (200, 302, 405)


@pytest.mark.parametrize("name", sorted(SCOPED_PAGES))
def test_scoped_pages_show_nothing_of_other_clinics(name, records, other_client, other_staff, other_clinic):
    mine = factories.make_person(other_staff, other_clinic, "Own Clinic Elder", elder=True)
    page = other_client.get(reverse(f"staff:{name}"), {"q": "", "view": "all"}).content.decode()
    for person in (records["person"], records["guardian"]):
        assert person.full_name not in page
        assert str(person.public_id) not in page
    if name == "people":
        assert mine.full_name in page


def test_registering_into_another_clinic_is_refused(other_client, clinic):
    count = Person.objects.count()
    response = other_client.post(
        reverse("staff:register_elder"),
        {
            "clinic": clinic.pk,
            "full_name": "Smuggled In",
            "id_number": factories.valid_id_number(),
            "birth_date": "1950-01-01",
            "document_type": "passport",
        },
    )
    assert response.status_code == 400
    assert "clinic" in response.context["form"].errors
    assert Person.objects.count() == count


def test_importing_into_another_clinic_is_refused(other_client, clinic):
    response = other_client.post(
        reverse("staff:results_import"),
        {"clinic": clinic.pk, "file": SimpleUploadedFile("r.csv", b"id_number\n", content_type="text/csv")},
    )
    assert response.status_code == 400
    assert "clinic" in response.context["form"].errors


def test_authorization_across_clinics_cannot_be_formed(staff_client, staff, clinic, other_clinic, elder):
    foreign_guardian = factories.make_person(
        factories.make_staff(other_clinic), other_clinic, "Foreign Guardian", guardian=True
    )
    url = reverse("staff:authorization_new") + f"?elder={elder.public_id}&guardian={foreign_guardian.public_id}"
    assert staff_client.get(url).status_code == 404
