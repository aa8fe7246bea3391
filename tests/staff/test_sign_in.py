"""Staff sign-in: password + TOTP (or a backup code); every staff page needs a verified session."""

import pytest
from django.test import Client
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY

from lookups.models import AuditEvent
from tests.conftest import totp_now
from tests.staff.conftest import device_of

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"


def _sign_in(client, username, token, next_url=""):
    data = {"username": username, "password": PASSWORD, "otp_token": token}
    if next_url:
        data["next"] = next_url
    return client.post(reverse("staff:login"), data)


def test_password_and_code_give_a_verified_session(client, staff):
    device = device_of(staff)
    response = _sign_in(client, staff.username, totp_now(device))
    assert response.status_code == 302 and response.url == reverse("staff:home")
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get(reverse("staff:home")).status_code == 200
    assert AuditEvent.objects.filter(action="login.succeeded", actor=staff, details__via="staff").exists()


def test_next_is_followed_only_within_the_site(client, staff):
    device = device_of(staff)
    response = _sign_in(client, staff.username, totp_now(device), next_url=reverse("staff:people"))
    assert response.url == reverse("staff:people")
    client.logout()
    response = _sign_in(Client(), staff.username, totp_now(device, 1), next_url="https://evil.example/")
    assert response.url == reverse("staff:home")


def test_wrong_code_is_refused_and_password_not_echoed(client, staff):
    device = device_of(staff)
    wrong = f"{(int(totp_now(device)) + 1) % 1000000:06d}"
    response = _sign_in(client, staff.username, wrong)
    assert response.status_code == 400
    assert "not correct" in response.content.decode()
    assert PASSWORD not in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.failed", outcome="invalid_token", details__via="staff").exists()


def test_missing_code_is_refused(client, staff):
    device_of(staff)
    response = _sign_in(client, staff.username, "")
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def test_staff_without_authenticator_cannot_sign_in(client, staff):
    response = _sign_in(client, staff.username, "123456")
    assert response.status_code == 400
    assert "no authenticator" in response.content.decode()


def test_backup_code_signs_in_once(client, staff):
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    device_of(staff)

    static = StaticDevice.objects.create(user=staff, name="Backup codes", confirmed=True)
    StaticToken.objects.create(device=static, token="12345678")
    assert _sign_in(client, staff.username, "12345678").status_code == 302
    other = Client()
    assert _sign_in(other, staff.username, "12345678").status_code == 400


def test_guardian_account_cannot_use_the_staff_login(client, guardian, guardian_device):
    response = _sign_in(client, guardian.user.username, totp_now(guardian_device))
    assert response.status_code == 400
    assert "_auth_user_id" not in client.session


def _all_staff_urls(person, authorization, result):
    from guardians.urls import urlpatterns

    args = {"public_id": person.public_id, "pk": authorization.pk}
    urls = []
    for pattern in urlpatterns:
        if pattern.name in ("login", "logout"):
            continue
        keys = list(pattern.pattern.converters)
        kwargs = {k: args[k] for k in keys}
        if pattern.name == "result_photo":
            kwargs = {"pk": result.pk}
        urls.append(reverse(f"staff:{pattern.name}", kwargs=kwargs))
    return urls


def test_every_staff_page_without_otp_verification_redirects_to_the_staff_login(
    client, staff, elder, authorization, results
):
    client.force_login(staff)  # password only: the session is not OTP-verified
    urls = _all_staff_urls(elder, authorization, results[0])
    assert len(urls) >= 20
    for url in urls:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 302, (url, response.status_code)
            assert response.url.startswith(reverse("staff:login") + "?next="), url


def test_anonymous_users_are_sent_to_the_staff_login(client, elder):
    response = client.get(reverse("staff:person", args=[elder.public_id]))
    assert response.status_code == 302 and response.url.startswith(reverse("staff:login"))


def test_verified_non_member_gets_403(db):
    from tests import factories
    from tests.staff.conftest import verified_client

    nobody = factories.UserFactory()
    assert verified_client(nobody).get(reverse("staff:home")).status_code == 403


def test_logout_ends_the_session(staff_client):
    assert staff_client.post(reverse("staff:logout")).status_code == 302
    assert staff_client.get(reverse("staff:home")).status_code == 302
