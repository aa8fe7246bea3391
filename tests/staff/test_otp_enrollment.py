"""Enrolling a guardian's authenticator at the desk; printable backup codes."""

import re

import pytest
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from lookups import services as lookup_services
from lookups.audit import Actor
from lookups.models import AuditEvent, LookupRequest
from tests.helpers import start_lookup, totp_now

pytestmark = pytest.mark.django_db


def _start(client, person) -> TOTPDevice:
    response = client.post(reverse("staff:otp_enroll", args=[person.public_id]), {"action": "start"})
    assert response.status_code == 302
    return TOTPDevice.objects.get(user=person.user, confirmed=False)


def test_qr_code_is_shown_for_an_unconfirmed_device(staff_client, guardian):
    device = _start(staff_client, guardian)
    page = staff_client.get(reverse("staff:otp_enroll", args=[guardian.public_id]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and "<script" not in html.split("<main", 1)[1].split("</main>")[0]
    assert page.context["secret"].replace(" ", "") in device.config_url
    assert page["Cache-Control"].startswith("max-age=0")


def test_device_is_inactive_until_confirmed(staff_client, guardian_client, guardian, authorization):
    device = _start(staff_client, guardian)
    lookup = start_lookup(guardian_client, authorization.elder)
    # A code from the not-yet-confirmed device does not pass the lookup's OTP step.
    with pytest.raises(lookup_services.LookupRefused) as refused:
        lookup_services.lookup_verify_otp(
            actor=Actor.for_user(guardian.user),
            lookup_id=lookup.pk,
            session_binding=lookup.session_binding,
            token=totp_now(device),
        )
    assert refused.value.code == "no_device"
    # Confirm with one code at the desk: now it is active and usable.
    response = staff_client.post(
        reverse("staff:otp_enroll", args=[guardian.public_id]), {"device": device.pk, "token": totp_now(device)}
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    second = start_lookup(guardian_client, authorization.elder)
    lookup_services.lookup_verify_otp(
        actor=Actor.for_user(guardian.user),
        lookup_id=second.pk,
        session_binding=second.session_binding,
        token=totp_now(device, 1),
    )
    second.refresh_from_db()
    assert second.state == LookupRequest.State.AWAITING_FACE


def test_wrong_code_leaves_it_inactive(staff_client, guardian):
    device = _start(staff_client, guardian)
    wrong = f"{(int(totp_now(device)) + 1) % 1000000:06d}"
    response = staff_client.post(
        reverse("staff:otp_enroll", args=[guardian.public_id]), {"device": device.pk, "token": wrong}
    )
    assert response.status_code == 400
    assert "not correct" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    assert AuditEvent.objects.filter(action="otp_device.confirmed", outcome="wrong_code").exists()


def test_confirmed_new_device_replaces_the_old_one(staff_client, guardian, guardian_device):
    device = _start(staff_client, guardian)
    staff_client.post(
        reverse("staff:otp_enroll", args=[guardian.public_id]), {"device": device.pk, "token": totp_now(device)}
    )
    assert list(TOTPDevice.objects.filter(user=guardian.user)) == [device]
    assert AuditEvent.objects.filter(action="otp_device.replaced").exists()


def test_restarting_discards_the_abandoned_qr_code(staff_client, guardian):
    first = _start(staff_client, guardian)
    second = _start(staff_client, guardian)
    assert not TOTPDevice.objects.filter(pk=first.pk).exists()
    response = staff_client.post(
        reverse("staff:otp_enroll", args=[guardian.public_id]), {"device": first.pk, "token": totp_now(first)}
    )
    assert response.status_code == 302  # "start again" message, nothing confirmed
    second.refresh_from_db()
    assert not second.confirmed


def test_backup_codes_are_printed_once_and_work_once_at_the_lookup(
    staff_client, guardian, guardian_client, authorization, guardian_device
):
    response = staff_client.post(reverse("staff:backup_codes", args=[guardian.public_id]))
    assert response.status_code == 200
    codes = response.context["codes"]
    assert len(codes) == 10 and all(re.fullmatch(r"\d{8}", c) for c in codes)
    assert StaticToken.objects.filter(device__user=guardian.user).count() == 10
    event = AuditEvent.objects.get(action="otp_backup_codes.issued")
    assert all(code not in str(event.details) for code in codes)

    lookup = start_lookup(guardian_client, authorization.elder)
    reply = guardian_client.post(reverse("lookups:otp", args=[lookup.pk]), {"token": codes[0]})
    assert reply.status_code == 302
    lookup.refresh_from_db()
    assert lookup.state == LookupRequest.State.AWAITING_FACE
    assert AuditEvent.objects.filter(action="otp.verified", outcome="backup_code").exists()

    again = start_lookup(guardian_client, authorization.elder)
    guardian_client.post(reverse("lookups:otp", args=[again.pk]), {"token": codes[0]})
    again.refresh_from_db()
    assert again.state == LookupRequest.State.AWAITING_OTP

    # Re-issuing invalidates the old sheet.
    staff_client.post(reverse("staff:backup_codes", args=[guardian.public_id]))
    assert not StaticToken.objects.filter(token__in=codes[1:]).exists()


def test_person_without_login_cannot_enroll_an_authenticator(staff_client, staff, elder):
    response = staff_client.post(reverse("staff:otp_enroll", args=[elder.public_id]), {"action": "start"})
    assert response.status_code == 302
    assert not TOTPDevice.objects.exclude(user=staff).exists()
