"""The admin requires staff OTP and writes through the services."""

import pytest
from django.urls import reverse

from guardians import services
from lookups.audit import Actor
from tests import factories
from tests.helpers import sign_in_verified, totp_now

pytestmark = pytest.mark.django_db


def _otp_login(client, user):
    device = services.totp_device_create(actor=Actor.system("test"), user=user, confirmed=True)
    sign_in_verified(client, user, device)
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


@pytest.mark.parametrize(
    "name",
    [
        "guardians_person_add",
        "guardians_authorization_add",
        "guardians_faceenrollment_add",
        "lookups_testresult_add",
        "guardians_staffmembership_add",
        "otp_totp_totpdevice_add",
        "otp_static_staticdevice_add",
        "guardians_user_add",
    ],
)
def test_admin_adds_nothing_one_desk_for_writes(client, clinic, name):
    """People, authorizations, enrollments, devices, memberships and results change at /staff/ only."""
    _otp_login(client, factories.make_staff(clinic, is_superuser=True))
    assert client.get(reverse(f"admin:{name}")).status_code == 403
    assert client.post(reverse(f"admin:{name}"), {}).status_code == 403


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
