import pytest
from django.urls import reverse

from lookups import services
from lookups.audit import Actor
from lookups.models import AuditEvent, LookupRequest
from tests.helpers import start_lookup, totp_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def lookup(guardian_client, authorization, guardian_device):
    return start_lookup(guardian_client, authorization.elder)


def _post(client, lookup, token):
    return client.post(reverse("lookups:otp", args=[lookup.pk]), {"token": token}, follow=True)


def test_correct_code_moves_to_face_step(guardian_client, lookup, guardian_device):
    response = _post(guardian_client, lookup, totp_now(guardian_device))
    lookup.refresh_from_db()
    assert lookup.state == LookupRequest.State.AWAITING_FACE
    assert response.redirect_chain[-1][0] == reverse("lookups:face", args=[lookup.pk])


def test_wrong_code_is_refused_and_counted(guardian_client, lookup, guardian_device):
    wrong = f"{(int(totp_now(guardian_device)) + 1) % 1000000:06d}"
    response = _post(guardian_client, lookup, wrong)
    assert "not correct" in response.content.decode()
    lookup.refresh_from_db()
    guardian_device.refresh_from_db()
    assert lookup.state == LookupRequest.State.AWAITING_OTP
    assert guardian_device.throttling_failure_count == 1
    assert AuditEvent.objects.filter(action="otp.failed", outcome="wrong_code").count() == 1


def test_non_numeric_code_gets_a_field_error(guardian_client, lookup):
    response = guardian_client.post(reverse("lookups:otp", args=[lookup.pk]), {"token": "abcdef"})
    assert response.status_code == 200
    assert "digits only" in response.content.decode()


def test_code_is_accepted_once_only(guardian_client, authorization, lookup, guardian_device):
    code = totp_now(guardian_device)
    _post(guardian_client, lookup, code)
    second = start_lookup(guardian_client, authorization.elder)
    response = _post(guardian_client, second, code)
    second.refresh_from_db()
    assert second.state == LookupRequest.State.AWAITING_OTP
    assert "already used" in response.content.decode()


def test_throttled_after_failures_even_with_the_right_code(lookup, guardian_device, guardian):
    actor = Actor.for_user(guardian.user)
    for _ in range(3):
        with pytest.raises(services.LookupRefused):
            services.lookup_verify_otp(
                actor=actor, lookup_id=lookup.pk, session_binding=lookup.session_binding, token="000000"
            )
    with pytest.raises(services.LookupRefused) as refused:
        services.lookup_verify_otp(
            actor=actor, lookup_id=lookup.pk, session_binding=lookup.session_binding, token=totp_now(guardian_device)
        )
    assert refused.value.code == "throttled"
    assert refused.value.retry_at is not None
    lookup.refresh_from_db()
    assert lookup.state == LookupRequest.State.AWAITING_OTP


def test_throttle_allows_far_fewer_than_100_guesses_an_hour(guardian_device):
    # django-otp doubles the delay after each failure (1, 2, 4 ... s): the waits of the
    # first 12 failures already add up to more than an hour.
    assert sum(2**k for k in range(12)) > 3600
    assert guardian_device.get_throttle_factor() >= 1


def test_unconfirmed_device_is_not_usable(guardian_client, authorization, guardian):
    from guardians import services as guardian_services

    device = guardian_services.totp_device_create(actor=Actor.system("test"), user=guardian.user, confirmed=False)
    lookup = start_lookup(guardian_client, authorization.elder)
    response = _post(guardian_client, lookup, totp_now(device))
    assert "No authenticator" in response.content.decode()
