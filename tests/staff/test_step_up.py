"""Step-up re-authentication: changing authorizations or enrollments needs a recent code."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from config.middleware import SESSION_OTP_AT
from lookups.models import AuditEvent
from tests.helpers import device_of, totp_now

pytestmark = pytest.mark.django_db


def _stale(client):
    session = client.session
    session[SESSION_OTP_AT] = session[SESSION_OTP_AT] - 3600
    session.save()


@pytest.mark.parametrize("name", ["authorization_new", "register_elder"])
def test_fresh_code_needed_only_for_sensitive_changes(staff_client, name):
    _stale(staff_client)
    response = staff_client.get(reverse(f"staff:{name}"))
    if name == "authorization_new":
        assert response.status_code == 302 and response.url.startswith(reverse("staff:reverify"))
    else:
        assert response.status_code == 200  # registering a person is not a step-up action


def test_reverify_then_continue(staff_client, staff):
    _stale(staff_client)
    target = reverse("staff:authorization_new")
    response = staff_client.get(target)
    assert response.status_code == 302
    wrong = staff_client.post(reverse("staff:reverify"), {"otp_token": "000000", "next": target})
    assert wrong.status_code == 400 and "not correct" in wrong.content.decode()
    assert staff_client.get(target).status_code == 302  # still stale
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=2)):  # past django-otp's 1 s throttle
        ok = staff_client.post(reverse("staff:reverify"), {"otp_token": totp_now(device_of(staff)), "next": target})
    assert ok.status_code == 302 and ok.url == target
    assert staff_client.get(target).status_code == 200
    assert list(AuditEvent.objects.filter(action__startswith="staff.reverif").values_list("outcome", flat=True)) == [
        "ok",
        "wrong_code",
    ]


def test_post_with_a_stale_code_changes_nothing(staff_client, authorization, manager):
    from guardians.models import Authorization

    _stale(staff_client)
    response = staff_client.post(
        reverse("staff:authorization_revoke", args=[authorization.pk]),
        {"revoke-reason": "At the elder's request", "revoke-requested_by": "elder"},
    )
    assert response.status_code == 302 and reverse("staff:reverify") in response.url
    authorization.refresh_from_db()
    assert authorization.status == Authorization.Status.ACTIVE


def test_code_goes_stale_after_the_window(staff_client, settings):
    target = reverse("staff:authorization_new")
    assert staff_client.get(target).status_code == 200
    later = timezone.now() + dt.timedelta(seconds=settings.KINGUARD_STAFF_REAUTH_SECONDS + 5)
    with time_machine.travel(later):
        assert staff_client.get(target).status_code == 302


def test_real_sign_in_with_a_code_counts_as_fresh(client, staff):
    response = client.post(
        reverse("staff:login"),
        {"username": staff.username, "password": "correct horse battery", "otp_token": totp_now(device_of(staff))},
    )
    assert response.status_code == 302
    assert client.get(reverse("staff:authorization_new")).status_code == 200
