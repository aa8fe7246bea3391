"""Session-bound grants (issue 10.1): the factors bind to the session that presented them.

Attacks: a second browser signed in to the same account with the password only; the same
browser after signing out; a session key planted before sign-in (fixation).
"""

import pytest
from django.test import Client
from django.urls import reverse

from lookups.models import LookupRequest
from lookups.session_binding import binding_for_key
from tests.helpers import face_bytes, pass_otp, start_lookup, submit_face

pytestmark = pytest.mark.django_db
State = LookupRequest.State

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def guardian(guardian):
    """The guardian with a known password, set before any browser signs in."""
    guardian.user.set_password(PASSWORD)
    guardian.user.save()
    return guardian


@pytest.fixture
def second_browser(guardian):
    """The same account, signed in with the password only, in another browser."""
    other = Client()
    response = other.post(reverse("login"), {"username": guardian.user.get_username(), "password": PASSWORD})
    assert response.status_code == 302, response
    return other


def test_lookup_stores_a_keyed_hash_of_the_session_key(guardian_client, authorization):
    lookup = start_lookup(guardian_client, authorization.elder)
    key = guardian_client.session.session_key
    assert lookup.session_binding == binding_for_key(key)
    assert key not in lookup.session_binding and len(lookup.session_binding) == 64


def test_second_browser_cannot_open_results(granted, guardian_client, second_browser, results):
    url = reverse("lookups:results", args=[granted.pk])
    assert results[0].lab in guardian_client.get(url).content.decode()
    response = second_browser.get(url)
    assert response.status_code == 404
    assert results[0].lab not in response.content.decode()


def test_second_browser_cannot_poll_status(granted, second_browser):
    assert second_browser.get(reverse("lookups:status", args=[granted.pk])).status_code == 404


def test_second_browser_cannot_take_the_otp_step(guardian_client, authorization, guardian_device, second_browser):
    from tests.helpers import totp_now

    lookup = start_lookup(guardian_client, authorization.elder)
    url = reverse("lookups:otp", args=[lookup.pk])
    assert second_browser.get(url).status_code == 404
    assert second_browser.post(url, {"token": totp_now(guardian_device)}).status_code == 404
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_OTP


def test_second_browser_cannot_take_the_face_step(
    guardian_client, authorization, guardian_device, enrolled_guardian, second_browser
):
    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    assert second_browser.get(reverse("lookups:face", args=[lookup.pk])).status_code == 404
    assert submit_face(second_browser, lookup, face_bytes("person_01/04.jpg")).status_code == 404
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_FACE and not lookup.face_checks.exists()


def test_second_browser_cannot_cancel(guardian_client, authorization, second_browser):
    lookup = start_lookup(guardian_client, authorization.elder)
    assert second_browser.post(reverse("lookups:cancel", args=[lookup.pk])).status_code == 404
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_OTP


def test_signing_out_ends_the_grant(granted, guardian_client, guardian, results):
    url = reverse("lookups:results", args=[granted.pk])
    assert guardian_client.get(url).status_code == 200
    guardian_client.post(reverse("logout"))
    guardian_client.force_login(guardian.user)  # signing back in is a new session
    assert guardian_client.get(url).status_code == 404
    assert guardian_client.get(reverse("lookups:status", args=[granted.pk])).status_code == 404


def test_session_key_rotates_at_sign_in(client, guardian):
    """Fixation: a key the attacker planted before sign-in is not the signed-in session's."""
    client.get(reverse("login"))
    session = client.session
    session["planted"] = True
    session.save()
    before = session.session_key
    client.cookies["sessionid"] = before
    client.post(reverse("login"), {"username": guardian.user.get_username(), "password": PASSWORD})
    after = client.session.session_key
    assert after and after != before


def test_staff_sign_in_rotates_the_session_key(client, staff):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.helpers import totp_now

    staff.set_password(PASSWORD)
    staff.save()
    device = TOTPDevice.objects.filter(user=staff, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=staff, name="test", confirmed=True)
    client.get(reverse("staff:login"))
    session = client.session
    session.save()
    before = session.session_key
    client.cookies["sessionid"] = before
    response = client.post(
        reverse("staff:login"),
        {"username": staff.get_username(), "password": PASSWORD, "otp_token": totp_now(device)},
    )
    assert response.status_code == 302, response.content[:500]
    assert client.session.session_key != before


def test_same_session_still_works_end_to_end(granted, guardian_client, results):
    assert results[0].lab in guardian_client.get(reverse("lookups:results", args=[granted.pk])).content.decode()


def test_signing_out_closes_the_sessions_open_lookups_with_an_audit_event(
    granted, guardian_client, authorization, guardian
):
    from lookups.models import AuditEvent

    waiting = start_lookup(guardian_client, authorization.elder)
    other = Client()
    other.force_login(guardian.user)
    elsewhere = start_lookup(other, authorization.elder)
    guardian_client.post(reverse("logout"))
    for lookup in (granted, waiting):
        lookup.refresh_from_db()
        assert (lookup.state, lookup.end_reason) == (State.CANCELLED, "signed_out")
        assert AuditEvent.objects.filter(action="lookup.cancelled", target_id=str(lookup.pk)).exists()
    elsewhere.refresh_from_db()
    assert elsewhere.state == State.AWAITING_OTP  # the other session's lookup is untouched
