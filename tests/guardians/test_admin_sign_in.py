"""The admin's sign-in is the staff form (issue 10 item 3, issue 12): no oracle before both factors,
no device drop-down, the password never echoed, axes lockout kept, OTP still required."""

from pathlib import Path

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django_otp.admin import OTPAdminSite

from config.admin_site import KinguardAdminSite
from guardians.staff.forms import AdminLoginForm
from lookups.models import AuditEvent
from tests import factories
from tests.helpers import device_of, totp_now
from tests.staff.test_sign_in import PASSWORD, _three_failures, _wrong_code, normalised_body

pytestmark = pytest.mark.django_db


def test_admin_site_is_installed_the_documented_way():
    import config.urls  # noqa: F401  (the admin's URLs and audit wrappers are set up there)

    assert isinstance(admin.site, KinguardAdminSite) and isinstance(admin.site, OTPAdminSite)
    assert admin.site.name == "admin"
    assert admin.site.login_form is AdminLoginForm
    source = Path(config.urls.__file__).read_text()
    assert "__class__" not in source


def test_admin_login_wrong_password_wrong_code_unknown_user_are_indistinguishable(staff):
    device = device_of(staff)
    responses, unknown = _three_failures(reverse("admin:login"), staff, device)
    assert len({r.status_code for r in responses}) == 1
    bodies = {normalised_body(r, staff.username, unknown) for r in responses}
    assert len(bodies) == 1, "the admin page tells which factor was wrong"
    body = bodies.pop()
    assert b"username, password or code is not correct" in body
    reasons = set(
        AuditEvent.objects.filter(action="login.failed", details__via="admin").values_list("outcome", flat=True)
    )
    assert reasons, "admin sign-in failures are still audited"


def test_admin_login_page_has_no_device_select_and_never_echoes_the_password(staff):
    device = device_of(staff)
    url = reverse("admin:login")
    page = Client().get(url).content.decode()
    assert "otp_device" not in page and "<select" not in page and "otp_challenge" not in page
    assert 'name="otp_token"' in page
    for password, token in ((PASSWORD, _wrong_code(device)), ("not-the-password", totp_now(device)), (PASSWORD, "")):
        body = Client().post(url, {"username": staff.username, "password": password, "otp_token": token}).content
        text = body.decode()
        assert password not in text
        assert "otp_device" not in text and "<select" not in text
        if token:
            assert f'value="{token}"' not in text
        device.throttle_reset()


def test_admin_login_with_both_factors_is_verified_and_reaches_the_admin(staff):
    device = device_of(staff)
    client = Client()
    response = client.post(
        reverse("admin:login"),
        {
            "username": staff.username,
            "password": PASSWORD,
            "otp_token": totp_now(device),
            "next": reverse("admin:index"),
        },
    )
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_superuser_without_membership_signs_in_to_the_admin_not_the_workspace(db):
    auditor = factories.UserFactory(is_staff=True, is_superuser=True)
    device = device_of(auditor)
    client = Client()
    response = client.post(
        reverse("admin:login"),
        {
            "username": auditor.username,
            "password": PASSWORD,
            "otp_token": totp_now(device),
            "next": reverse("admin:index"),
        },
    )
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_non_staff_with_both_factors_gets_the_generic_answer_on_the_admin(guardian, guardian_device):
    url = reverse("admin:login")
    client = Client()
    response = client.post(
        url, {"username": guardian.user.username, "password": PASSWORD, "otp_token": totp_now(guardian_device)}
    )
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    assert b"username, password or code is not correct" in response.content


def test_password_only_session_is_not_admitted(staff):
    """OTPAdminSite.has_permission still requires a verified device."""
    client = Client()
    client.force_login(staff)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and reverse("admin:login") in response.url


def test_admin_lockout_after_the_failure_limit(staff, settings):
    device = device_of(staff)
    url = reverse("admin:login")
    statuses = []
    for i in range(settings.AXES_FAILURE_LIMIT):
        password = PASSWORD if i % 2 else "nope"
        statuses.append(
            Client()
            .post(url, {"username": staff.username, "password": password, "otp_token": _wrong_code(device)})
            .status_code
        )
        device.throttle_reset()
    assert statuses[-1] == 429
    locked = Client()
    response = locked.post(url, {"username": staff.username, "password": PASSWORD, "otp_token": totp_now(device)})
    assert response.status_code == 429 and "_auth_user_id" not in locked.session
