"""Staff sign-in: password + TOTP (or a backup code); every staff page needs a verified session."""

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from lookups.models import AuditEvent
from tests.helpers import device_of, totp_now

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
    # The same answer as a wrong password (the right password is not confirmed); the audit keeps the reason.
    assert "username, password or code is not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.failed", outcome="no_device", details__via="staff").exists()


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
    from guardians.staff.urls import urlpatterns

    args = {"public_id": person.public_id, "pk": authorization.pk, "key": "0" * 32}
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
    from tests.helpers import verified_client

    nobody = factories.UserFactory()
    assert verified_client(nobody).get(reverse("staff:home")).status_code == 403


def test_logout_ends_the_session(staff_client):
    assert staff_client.post(reverse("staff:logout")).status_code == 302
    assert staff_client.get(reverse("staff:home")).status_code == 302


# --- no oracle before both factors (issue 10 item 3) --------------------------------------

_CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]+"')


def normalised_body(response, *usernames: str) -> bytes:
    """The page with its CSRF token (and the typed username, which the form refills) blanked."""
    body = _CSRF.sub(b'name="csrfmiddlewaretoken" value=""', response.content)
    for username in usernames:
        body = body.replace(username.encode(), b"USERNAME")
    return body


def _wrong_code(device) -> str:
    return f"{(int(totp_now(device)) + 1) % 1000000:06d}"


def _three_failures(url, user, device):
    """Wrong password, right password + wrong code, unknown user (each from a fresh browser)."""
    unknown = "nobody-at-all"
    return [
        Client().post(url, {"username": user.username, "password": "wrong password", "otp_token": totp_now(device)}),
        Client().post(url, {"username": user.username, "password": PASSWORD, "otp_token": _wrong_code(device)}),
        Client().post(url, {"username": unknown, "password": PASSWORD, "otp_token": totp_now(device)}),
    ], unknown


def test_staff_login_wrong_password_wrong_code_unknown_user_are_indistinguishable(staff):
    device = device_of(staff)
    responses, unknown = _three_failures(reverse("staff:login"), staff, device)
    assert {r.status_code for r in responses} == {400}
    bodies = {normalised_body(r, staff.username, unknown) for r in responses}
    assert len(bodies) == 1, "the page tells which factor was wrong"
    assert b"username, password or code is not correct" in bodies.pop()
    reasons = set(
        AuditEvent.objects.filter(action="login.failed", details__via="staff").values_list("outcome", flat=True)
    )
    assert reasons == {"invalid_login", "invalid_token"}  # the audit still knows which


@pytest.mark.parametrize("token", ["", "abc", "12345678", "1" * 8])
def test_staff_login_every_code_shape_with_right_password_answers_as_a_wrong_password(staff, token):
    device = device_of(staff)
    url = reverse("staff:login")
    wrong_password = Client().post(url, {"username": staff.username, "password": "nope", "otp_token": token})
    right_password = Client().post(url, {"username": staff.username, "password": PASSWORD, "otp_token": token})
    assert wrong_password.status_code == right_password.status_code == 400
    assert normalised_body(wrong_password) == normalised_body(right_password)
    assert device.verify_token(totp_now(device))  # the real device still works


def test_throttled_device_answers_as_a_wrong_password(staff):
    device = device_of(staff)
    device.throttling_failure_count = 5
    device.throttling_failure_timestamp = timezone.now()
    device.save()
    url = reverse("staff:login")
    throttled = Client().post(url, {"username": staff.username, "password": PASSWORD, "otp_token": totp_now(device)})
    wrong = Client().post(url, {"username": staff.username, "password": "nope", "otp_token": totp_now(device)})
    assert throttled.status_code == wrong.status_code == 400
    assert normalised_body(throttled) == normalised_body(wrong)
    assert AuditEvent.objects.filter(action="login.failed", outcome="throttled").exists()


def test_wrong_password_still_runs_an_otp_verification(staff, monkeypatch):
    """The dummy TOTP runs when the password is wrong or the user unknown (the timing path)."""
    from guardians.staff.forms import sign_in as staff_forms

    calls = []
    real = staff_forms._dummy_totp_verify
    monkeypatch.setattr(staff_forms, "_dummy_totp_verify", lambda token: calls.append(token) or real(token))
    device = device_of(staff)
    url = reverse("staff:login")
    Client().post(url, {"username": staff.username, "password": "nope", "otp_token": "123456"})
    Client().post(url, {"username": "nobody-at-all", "password": "nope", "otp_token": "123456"})
    assert calls == ["123456", "123456"]
    Client().post(url, {"username": staff.username, "password": PASSWORD, "otp_token": _wrong_code(device)})
    assert len(calls) == 2  # the real device did the work


def test_lockout_after_the_failure_limit_counts_wrong_codes_too(staff, settings):
    device = device_of(staff)
    url = reverse("staff:login")
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        password = PASSWORD if i % 2 else "nope"  # wrong passwords and wrong codes both count
        response = Client().post(
            url, {"username": staff.username, "password": password, "otp_token": _wrong_code(device)}
        )
        assert response.status_code == 400
        device.throttle_reset()  # django-otp's own throttle is tested elsewhere; here: axes
    last = Client().post(url, {"username": staff.username, "password": PASSWORD, "otp_token": _wrong_code(device)})
    assert last.status_code == 429  # the limit-th failure (a wrong code) locks
    device.throttle_reset()
    locked = Client().post(url, {"username": staff.username, "password": PASSWORD, "otp_token": totp_now(device)})
    assert locked.status_code != 302 and locked.status_code in (403, 429)
    assert "_auth_user_id" not in Client().session


def test_no_workspace_message_only_after_both_factors(db):
    from tests import factories

    auditor = factories.UserFactory(is_staff=True, is_superuser=True)  # no clinic membership
    device = device_of(auditor)
    url = reverse("staff:login")
    wrong_code = Client().post(
        url, {"username": auditor.username, "password": PASSWORD, "otp_token": _wrong_code(device)}
    )
    wrong_password = Client().post(
        url, {"username": auditor.username, "password": "nope", "otp_token": totp_now(device)}
    )
    for response in (wrong_code, wrong_password):
        assert response.status_code == 400
        assert b"no clinic workspace" not in response.content
        assert b"username, password or code is not correct" in response.content
    device.throttle_reset()  # the wrong code above started django-otp's back-off
    both = Client()
    response = both.post(url, {"username": auditor.username, "password": PASSWORD, "otp_token": totp_now(device, 1)})
    assert response.status_code == 400
    body = response.content.decode()
    assert "This account has no clinic workspace" in body and "/admin/" in body
    assert "not correct" not in body
    assert "_auth_user_id" not in both.session
    assert AuditEvent.objects.filter(action="login.failed", outcome="no_workspace").exists()
