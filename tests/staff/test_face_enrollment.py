"""Face enrollment at the desk: consent first, several photos, the quality gate, re-enrollment."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from guardians import services
from guardians.models import FaceConsent, FaceEnrollment
from lookups.models import AuditEvent
from tests import factories
from tests.helpers import face_bytes

pytestmark = pytest.mark.django_db
CONSENT = "I agree that my face template is stored to confirm it is me."


def _consent(client, person, **overrides):
    data = {"consent_text": CONSENT, "given_by": "person", "representative_name": "", "confirmed": "on"}
    data.update(overrides)
    return client.post(reverse("staff:face_consent", args=[person.public_id]), data)


def _photos(*relative):
    return {"photos": [SimpleUploadedFile(f"{i}.jpg", face_bytes(r), "image/jpeg") for i, r in enumerate(relative)]}


def test_consent_comes_first(staff_client, guardian):
    response = staff_client.get(reverse("staff:face_enroll", args=[guardian.public_id]))
    assert response.status_code == 302 and response.url == reverse("staff:face_consent", args=[guardian.public_id])


def test_consent_is_recorded_with_text_and_who(staff_client, staff, guardian):
    response = _consent(staff_client, guardian, given_by="representative", representative_name="Li Jun (son)")
    assert response.status_code == 302 and response.url == reverse("staff:face_enroll", args=[guardian.public_id])
    consent = FaceConsent.objects.get(person=guardian)
    assert (consent.consent_text, consent.given_by, consent.representative_name, consent.recorded_by) == (
        CONSENT,
        "representative",
        "Li Jun (son)",
        staff,
    )
    assert AuditEvent.objects.filter(action="face.consent_recorded", subject=guardian).exists()


def test_consent_needs_the_tick_and_a_representative_name(staff_client, guardian):
    response = _consent(staff_client, guardian, confirmed="", given_by="representative")
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "confirmed" in errors and "representative_name" in errors
    assert CONSENT in response.content.decode()  # nothing typed is lost
    assert not FaceConsent.objects.exists()


@pytest.mark.faces
def test_enroll_from_three_photos(staff_client, staff, guardian):
    _consent(staff_client, guardian)
    response = staff_client.post(
        reverse("staff:face_enroll", args=[guardian.public_id]),
        _photos("person_01/01.jpg", "person_01/02.jpg", "person_01/03.jpg"),
    )
    assert response.status_code == 302, response.context and response.context["form"].errors
    enrollment = FaceEnrollment.objects.get(person=guardian)
    consent = FaceConsent.objects.get(person=guardian)
    assert enrollment.sample_count == 3 and enrollment.enrolled_by == staff
    assert enrollment.consent == consent and enrollment.consent_text == CONSENT
    assert enrollment.consented_at == consent.recorded_at and consent.used_at is not None
    # The consent is used up: another enrollment needs a new one.
    again = staff_client.get(reverse("staff:face_enroll", args=[guardian.public_id]))
    assert again.status_code == 302


@pytest.mark.faces
@pytest.mark.parametrize(
    ("bad", "code", "words"),
    [
        ("special/no_face_dogs.jpg", "no_face", "No face was found"),
        ("special/no_face_painting_scream.jpg", "no_face", "No face was found"),
        ("special/multi_face_two_people.jpg", "multiple_faces", "More than one face"),
        ("special/multi_face_crowd.jpg", "multiple_faces", "More than one face"),
        ("special/small_face.jpg", "face_too_small", "Your face is too small"),
    ],
)
def test_quality_gate_refuses_with_a_clear_reason(staff_client, guardian, bad, code, words):
    _consent(staff_client, guardian)
    response = staff_client.post(
        reverse("staff:face_enroll", args=[guardian.public_id]), _photos("person_01/01.jpg", bad)
    )
    assert response.status_code == 400
    error = response.context["form"].errors.as_data()["photos"][0]
    assert error.code == code
    assert f"Photo 2 of 2: {words}" in response.content.decode()
    assert not FaceEnrollment.objects.filter(person=guardian).exists()
    assert FaceConsent.objects.get(person=guardian).used_at is None  # consent still usable for a retake


def test_not_an_image_and_too_many_files(staff_client, guardian):
    _consent(staff_client, guardian)
    url = reverse("staff:face_enroll", args=[guardian.public_id])
    response = staff_client.post(url, {"photos": [SimpleUploadedFile("x.jpg", b"not a photo", "image/jpeg")]})
    assert response.status_code == 400 and "not a photo we can read" in response.content.decode()
    six = {"photos": [SimpleUploadedFile(f"{i}.jpg", b"x", "image/jpeg") for i in range(6)]}
    response = staff_client.post(url, six)
    assert response.status_code == 400 and "between 1 and 5" in response.content.decode()


@pytest.mark.faces
def test_re_enrollment_replaces_the_template_and_is_audited(staff_client, guardian):
    url = reverse("staff:face_enroll", args=[guardian.public_id])
    _consent(staff_client, guardian)
    staff_client.post(url, _photos("person_01/01.jpg", "person_01/02.jpg", "person_01/03.jpg"))
    first = FaceEnrollment.objects.get(person=guardian)
    _consent(staff_client, guardian)
    staff_client.post(url, _photos("person_01/02.jpg"))
    second = FaceEnrollment.objects.get(person=guardian)
    assert second.pk != first.pk and second.sample_count == 1
    assert second.template_ciphertext != first.template_ciphertext
    outcomes = list(
        AuditEvent.objects.filter(action="face.enrolled").order_by("sequence").values_list("outcome", flat=True)
    )
    assert outcomes == ["new", "replaced"]
    assert FaceConsent.objects.filter(person=guardian).count() == 2


def test_stale_consent_must_be_recorded_again(staff_client, staff, guardian):
    import datetime as dt

    from django.utils import timezone

    from guardians import services

    _consent(staff_client, guardian)
    FaceConsent.objects.update(
        recorded_at=timezone.now() - dt.timedelta(minutes=services.FACE_CONSENT_VALID_MINUTES + 1)
    )
    response = staff_client.get(reverse("staff:face_enroll", args=[guardian.public_id]))
    assert response.status_code == 302 and response.url.endswith("/face/consent/")


def test_withdrawn_consent_deletes_the_template_at_once(staff_client, staff, guardian):
    factories.enroll_face(staff, guardian, [face_bytes("person_02/01.jpg")], consent_text="ok")
    url = reverse("staff:face_withdraw", args=[guardian.public_id])
    assert staff_client.post(url, {"reason": "  "}).status_code == 302
    assert FaceEnrollment.objects.filter(person=guardian).exists()  # a reason is required
    response = staff_client.post(url, {"reason": "At the person's request"}, follow=True)
    assert "The face template is deleted." in response.content.decode()
    assert not FaceEnrollment.objects.filter(person=guardian).exists()
    event = AuditEvent.objects.get(action="face.consent_withdrawn")
    assert event.subject == guardian and event.details["reason"] == "At the person's request"
    assert services.face_template_of(guardian) is None
    assert staff_client.get(url).status_code == 405
