"""Attack tests for the admin: clinic scope, read-only domain models, no OTP secret, no private file URL."""

import base64

import pytest
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from guardians import services
from guardians.models import StaffMembership
from lookups.audit import Actor
from lookups.models import TestResult
from tests import factories
from tests.guardians.test_admin import _otp_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic_b_objects(other_clinic):
    """One object of every admin model, all at clinic B (a manager with a device and backup codes)."""
    staff_b = factories.make_staff(other_clinic)
    manager_b = factories.make_staff(other_clinic, role="manager")
    elder_b = factories.make_person(staff_b, other_clinic, "Wang Fang", elder=True)
    guardian_b = factories.make_person(staff_b, other_clinic, "Wang Lei", guardian=True, login=True)
    authorization = services.authorization_create(
        actor=Actor.for_user(staff_b),
        guardian=guardian_b,
        elder=elder_b,
        relationship="child",
        consent_basis="elder_present",
    )
    device = services.totp_device_create(actor=Actor.system("test"), user=manager_b, confirmed=True)
    services.backup_codes_issue(actor=Actor.for_user(staff_b), person=guardian_b)
    result = factories.make_result(staff_b, elder_b)
    return {
        "guardians_person": elder_b,
        "guardians_authorization": authorization,
        "guardians_staffmembership": StaffMembership.objects.get(user=manager_b),
        "guardians_user": manager_b,
        "guardians_clinic": other_clinic,
        "otp_totp_totpdevice": device,
        "otp_static_staticdevice": StaticDevice.objects.get(user=guardian_b.user),
        "lookups_testresult": result,
    }


@pytest.mark.parametrize("role", ["staff", "manager", "auditor"])
def test_another_clinics_objects_are_absent_and_404(client, clinic, clinic_b_objects, role):
    _otp_login(client, factories.make_staff(clinic, role=role))
    for name, obj in clinic_b_objects.items():
        listing = client.get(reverse(f"admin:{name}_changelist"))
        assert listing.status_code == 200, name
        assert reverse(f"admin:{name}_change", args=[obj.pk]) not in listing.content.decode(), name
        for view in ("change", "delete", "history"):
            response = client.get(reverse(f"admin:{name}_{view}", args=[obj.pk]))
            assert response.status_code == 404, (name, view, response.status_code)


def test_own_clinic_objects_are_listed_read_only(client, clinic, staff, elder):
    _otp_login(client, factories.make_staff(clinic, role="manager"))
    url = reverse("admin:guardians_person_change", args=[elder.pk])
    assert url in client.get(reverse("admin:guardians_person_changelist")).content.decode()
    page = client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(url, {"full_name": "Changed"}).status_code == 403
    assert client.get(reverse("admin:guardians_person_delete", args=[elder.pk])).status_code == 403


def _secrets(device: TOTPDevice, static: StaticDevice) -> list[str]:
    key = bytes.fromhex(device.key)
    values = [device.key, base64.b32encode(key).decode().rstrip("="), "otpauth"]
    return values + [token.token for token in static.token_set.all()]


@pytest.mark.parametrize("who", ["superuser", "manager"])
def test_no_otp_secret_on_any_admin_page(client, clinic, staff, guardian, who):
    manager = factories.make_staff(clinic, role="manager")
    device = services.totp_device_create(actor=Actor.system("test"), user=manager, confirmed=True)
    services.backup_codes_issue(actor=Actor.for_user(staff), person=guardian)
    static = StaticDevice.objects.get(user=guardian.user)
    reader = factories.make_staff(clinic, is_superuser=True) if who == "superuser" else manager
    _otp_login(client, reader)
    pages = [
        reverse("admin:index"),
        reverse("admin:otp_totp_totpdevice_changelist"),
        reverse("admin:otp_totp_totpdevice_change", args=[device.pk]),
        reverse("admin:otp_static_staticdevice_changelist"),
        reverse("admin:otp_static_staticdevice_change", args=[static.pk]),
        reverse("admin:guardians_user_change", args=[manager.pk]),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        for secret in _secrets(device, static):
            assert secret.lower() not in page.lower(), (url, secret)
    # django-otp's QR/config views are gone with its admin
    assert client.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/", follow=True).status_code == 404
    assert client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/", follow=True).status_code == 404


def test_front_desk_of_a_cannot_add_a_device_to_clinic_bs_manager(client, clinic, other_clinic):
    manager_b = factories.make_staff(other_clinic, role="manager")
    _otp_login(client, factories.make_staff(clinic))
    before = TOTPDevice.objects.filter(user=manager_b).count()
    response = client.post(
        reverse("admin:otp_totp_totpdevice_add"),
        {
            "user": manager_b.pk,
            "name": "mine",
            "key": "00" * 20,
            "step": 30,
            "t0": 0,
            "digits": 6,
            "tolerance": 1,
            "drift": 0,
            "confirmed": "on",
        },
    )
    assert response.status_code == 403
    assert TOTPDevice.objects.filter(user=manager_b).count() == before


def test_result_with_a_sampling_photo_renders_and_links_the_audited_view(client, clinic, staff, elder):
    result = factories.make_result(staff, elder)
    TestResult.objects.filter(pk=result.pk).update(sampling_photo="sampling/secret-name.png")
    _otp_login(client, factories.make_staff(clinic, role="manager"))
    listing = client.get(reverse("admin:lookups_testresult_changelist"))
    assert listing.status_code == 200
    page = client.get(reverse("admin:lookups_testresult_change", args=[result.pk]))
    assert page.status_code == 200
    content = page.content.decode()
    assert "secret-name" not in content and "secret-name" not in listing.content.decode()
    assert reverse("staff:result_photo", args=[result.pk]) in content
