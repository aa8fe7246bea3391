"""Grant window, revocation mid-flow, expiry and the sweeper."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from guardians import services as guardian_services
from lookups import services
from lookups.audit import Actor
from lookups.models import AuditEvent, FaceCheck, LookupRequest
from tests.helpers import face_bytes, pass_otp, run_pending_check, start_lookup, submit_face

pytestmark = pytest.mark.django_db
State = LookupRequest.State


def test_revocation_after_match_hides_results(guardian_client, granted, authorization, manager, results):
    url = reverse("lookups:results", args=[granted.pk])
    assert results[0].lab in guardian_client.get(url).content.decode()
    guardian_services.authorization_revoke(
        actor=Actor.for_user(manager), authorization_id=authorization.pk, reason="At the elder's request"
    )
    response = guardian_client.get(url, follow=True)
    assert results[0].lab not in response.content.decode()
    assert "no longer active" in response.content.decode()
    granted.refresh_from_db()
    assert granted.state == State.DENIED


def test_revocation_while_face_is_checked_denies(
    guardian_client, authorization, guardian_device, enrolled_guardian, manager
):
    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    submit_face(guardian_client, lookup, face_bytes("person_01/04.jpg"))
    guardian_services.authorization_revoke(
        actor=Actor.for_user(manager), authorization_id=authorization.pk, reason="At the guardian's request"
    )
    check = run_pending_check(lookup)
    assert check.outcome == FaceCheck.Outcome.MATCH
    assert lookup.state == State.DENIED and lookup.end_reason == "authorization_inactive"


def test_grant_expires(guardian_client, granted, results, settings):
    url = reverse("lookups:results", args=[granted.pk])
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=settings.KINGUARD_GRANT_MINUTES, seconds=1)):
        response = guardian_client.get(url, follow=True)
    assert results[0].lab not in response.content.decode()
    granted.refresh_from_db()
    assert granted.state == State.EXPIRED and granted.end_reason == "grant_ended"
    assert AuditEvent.objects.filter(action="grant.expired", subject=granted.elder).exists()


def test_grant_still_valid_just_before_the_end(guardian_client, granted, results, settings):
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=settings.KINGUARD_GRANT_MINUTES, seconds=-5)):
        assert results[0].lab in guardian_client.get(reverse("lookups:results", args=[granted.pk])).content.decode()


def test_sweeper_expires_stale_checks_and_deletes_probes(
    guardian_client, authorization, guardian_device, enrolled_guardian, settings
):
    from pathlib import Path

    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    submit_face(guardian_client, lookup, face_bytes("person_01/04.jpg"))
    check = lookup.face_checks.get()
    later = timezone.now() + dt.timedelta(seconds=settings.KINGUARD_FACE_CHECK_STALE_SECONDS + 1)
    counts = services.sweep_stale(now=later)
    assert counts["checks"] == 1
    check.refresh_from_db()
    lookup.refresh_from_db()
    assert check.outcome == FaceCheck.Outcome.EXPIRED and not Path(check.probe_path or "/nonexistent").exists()
    assert list(Path(settings.PROBE_DIR).iterdir()) == []
    assert lookup.state == State.AWAITING_FACE
    # A late delivery of the expired check does nothing.
    assert services.face_check_run(check_id=check.pk) == FaceCheck.Outcome.EXPIRED


def test_unfinished_lookup_expires(guardian_client, authorization, settings):
    lookup = start_lookup(guardian_client, authorization.elder)
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=settings.KINGUARD_LOOKUP_TTL_MINUTES + 1)):
        response = guardian_client.get(reverse("lookups:otp", args=[lookup.pk]), follow=True)
    assert "not finished in time" in response.content.decode()


def test_cancel(guardian_client, authorization):
    lookup = start_lookup(guardian_client, authorization.elder)
    guardian_client.post(reverse("lookups:cancel", args=[lookup.pk]))
    lookup.refresh_from_db()
    assert lookup.state == State.CANCELLED


def test_full_lookup_leaves_its_events_in_order(granted, guardian_client):
    guardian_client.get(reverse("lookups:results", args=[granted.pk]))
    actions = list(
        AuditEvent.objects.filter(target_id__in=[str(granted.pk), *[str(c.pk) for c in granted.face_checks.all()]])
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == [
        "lookup.started",
        "otp.verified",
        "face.submitted",
        "face.verdict",
        "lookup.granted",
        "results.viewed",
    ]
