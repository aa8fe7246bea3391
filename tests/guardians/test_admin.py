"""The admin requires staff OTP and writes through the services."""

import time

import pytest
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY

from config.middleware import SESSION_OTP_AT
from guardians import services
from guardians.models import Authorization, Person
from lookups.audit import Actor
from lookups.models import AuditEvent
from tests import factories
from tests.conftest import face_bytes, totp_now

pytestmark = pytest.mark.django_db


def _otp_login(client, user):
    device = services.totp_device_create(actor=Actor.system("test"), user=user, confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[SESSION_OTP_AT] = time.time()  # as right after signing in with a code
    session.save()
    return device


def test_admin_login_needs_an_otp_code(client, staff):
    device = services.totp_device_create(actor=Actor.system("test"), user=staff, confirmed=True)
    url = reverse("admin:login")
    response = client.post(url, {"username": staff.username, "password": "correct horse battery", "otp_token": ""})
    assert response.status_code == 200  # form redisplayed: password alone is not enough
    assert "_auth_user_id" not in client.session
    response = client.post(
        url,
        {
            "username": staff.username,
            "password": "correct horse battery",
            "otp_device": device.persistent_id,
            "otp_token": totp_now(device),
            "next": reverse("admin:index"),
        },
    )
    assert response.status_code == 302


def test_logged_in_without_otp_cannot_use_admin(client, staff):
    client.force_login(staff)
    response = client.get(reverse("admin:guardians_person_changelist"))
    assert response.status_code == 302 and reverse("admin:login") in response.url


def test_register_person_through_admin(client, staff, clinic):
    _otp_login(client, factories.make_staff(clinic, is_superuser=True))
    number = factories.valid_id_number()
    response = client.post(
        reverse("admin:guardians_person_add"),
        {
            "clinic": clinic.pk,
            "full_name": "Sun Li",
            "id_number": number,
            "phone": "",
            "notify_email": "",
            "is_elder": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    person = Person.objects.get(full_name="Sun Li")
    assert person.id_number_masked == number[:6] + "********" + number[-4:]
    assert AuditEvent.objects.filter(action="person.registered", subject=person).exists()


def test_admin_shows_a_bad_id_number_as_a_field_error(client, clinic):
    _otp_login(client, factories.make_staff(clinic, is_superuser=True))
    response = client.post(
        reverse("admin:guardians_person_add"),
        {"clinic": clinic.pk, "full_name": "Sun Li", "id_number": "110101194001010010", "is_elder": "on"},
    )
    assert response.status_code == 200
    assert "check digit" in response.content.decode()
    assert not Person.objects.filter(full_name="Sun Li").exists()


def test_admin_authorization_flow_needs_two_staff(client, staff, clinic, guardian, elder):
    superuser = factories.make_staff(clinic, is_superuser=True)
    _otp_login(client, superuser)
    response = client.post(
        reverse("admin:guardians_authorization_add"),
        {"guardian": guardian.pk, "elder": elder.pk, "relationship": "child", "consent_basis": "elder_present"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    authorization = Authorization.objects.get()
    assert authorization.status == Authorization.Status.PENDING
    changelist = reverse("admin:guardians_authorization_changelist")
    client.post(changelist, {"action": "approve", "_selected_action": [authorization.pk]})
    authorization.refresh_from_db()
    assert authorization.status == Authorization.Status.PENDING  # registrar may not approve
    client.logout()
    _otp_login(client, factories.make_staff(clinic, role="manager", is_superuser=True))
    client.post(changelist, {"action": "approve", "_selected_action": [authorization.pk]})
    authorization.refresh_from_db()
    assert authorization.status == Authorization.Status.ACTIVE


def test_face_enrollment_in_admin_refuses_photo_without_a_face(client, clinic, guardian):
    from django.core.files.uploadedfile import SimpleUploadedFile

    _otp_login(client, factories.make_staff(clinic, is_superuser=True))
    response = client.post(
        reverse("admin:guardians_faceenrollment_add"),
        {
            "person": guardian.pk,
            "photos": [SimpleUploadedFile("dogs.jpg", face_bytes("special/no_face_dogs.jpg"))],
            "consent_text": "I agree.",
            "consent_given": "on",
        },
    )
    assert response.status_code == 200
    assert "Photo 1" in response.content.decode()
    assert not hasattr(guardian, "face_enrollment") or not guardian.face_enrollment


def test_admin_only_lists_own_clinic_people(client, staff, clinic, other_clinic, elder):
    outsider_staff = factories.make_staff(other_clinic)
    outsider_staff.is_superuser = False
    outsider_staff.save()
    from django.contrib.auth.models import Permission

    outsider_staff.user_permissions.add(Permission.objects.get(codename="view_person"))
    _otp_login(client, outsider_staff)
    response = client.get(reverse("admin:guardians_person_changelist"))
    assert response.status_code == 200
    assert elder.full_name not in response.content.decode()
    assert client.get(reverse("admin:guardians_person_change", args=[elder.pk])).status_code in (302, 404)
