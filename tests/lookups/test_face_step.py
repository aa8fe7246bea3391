"""Face step through the real pipeline (the worker's service called directly)."""

import io
from pathlib import Path

import pytest
from django.urls import reverse
from PIL import Image

from lookups.models import AuditEvent, FaceCheck, LookupRequest
from tests.helpers import face_bytes, run_pending_check, submit_face

pytestmark = pytest.mark.django_db
State = LookupRequest.State


def test_same_person_matches_and_sees_results_without_photo(guardian_client, at_face_step, results):
    response = submit_face(guardian_client, at_face_step, face_bytes("person_01/04.jpg"))
    assert response.status_code == 302 and response.url == reverse("lookups:wait", args=[at_face_step.pk])
    check = run_pending_check(at_face_step)
    assert check.outcome == FaceCheck.Outcome.MATCH
    assert check.distance < check.threshold <= 0.5
    assert check.model_version.startswith("face_recognition-")
    assert at_face_step.state == State.GRANTED
    status = guardian_client.get(reverse("lookups:status", args=[at_face_step.pk])).json()
    assert status["done"] and status["next"] == reverse("lookups:results", args=[at_face_step.pk])
    page = guardian_client.get(status["next"]).content.decode()
    assert results[0].lab in page and "Negative" in page
    assert "sampling" not in page.lower() or "photo" not in page.lower()
    assert AuditEvent.objects.filter(action="results.viewed", subject=at_face_step.elder).count() == 1


def test_probe_file_is_gone_after_the_check(guardian_client, at_face_step, settings):
    submit_face(guardian_client, at_face_step, face_bytes("person_04/02.jpg"))
    check = at_face_step.face_checks.get()
    assert Path(check.probe_path).is_file()
    probe_path = check.probe_path
    from django.db import connection

    # on_commit callbacks do not run inside the test transaction; run them as a commit would.
    with pytest.MonkeyPatch.context():
        run_pending_check(at_face_step)
        for _, callback, _ in connection.run_on_commit:
            callback()
    assert not Path(probe_path).exists()
    assert list(Path(settings.PROBE_DIR).iterdir()) == []


def test_other_identity_is_refused_with_retry(guardian_client, at_face_step):
    submit_face(guardian_client, at_face_step, face_bytes("person_04/02.jpg"))
    check = run_pending_check(at_face_step)
    assert check.outcome == FaceCheck.Outcome.NO_MATCH
    assert at_face_step.state == State.AWAITING_FACE
    page = guardian_client.get(reverse("lookups:face", args=[at_face_step.pk])).content.decode()
    assert "did not match" in page
    assert guardian_client.get(reverse("lookups:results", args=[at_face_step.pk])).status_code == 302


@pytest.mark.parametrize(
    ("relative", "code", "message"),
    [
        ("special/no_face_dogs.jpg", "no_face", "could not find a face"),
        ("special/multi_face_two_people.jpg", "multiple_faces", "More than one face"),
        ("special/small_face.jpg", "face_too_small", "too small"),
    ],
)
def test_unusable_photos_get_their_own_message(guardian_client, at_face_step, relative, code, message):
    submit_face(guardian_client, at_face_step, face_bytes(relative))
    check = run_pending_check(at_face_step)
    assert (check.outcome, check.reason_code) == (FaceCheck.Outcome.REJECTED, code)
    page = guardian_client.get(reverse("lookups:face", args=[at_face_step.pk])).content.decode()
    assert message in page


def _truncated_jpeg() -> bytes:
    data = face_bytes("person_02/01.jpg")
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"", "photo"),
        (b"this is not an image at all", "image"),
        (None, "image"),
    ],
)
def test_bad_files_are_refused_without_server_error(guardian_client, at_face_step, payload, fragment):
    payload = _truncated_jpeg() if payload is None else payload
    response = guardian_client.post(
        reverse("lookups:face", args=[at_face_step.pk]),
        {"photo": io.BytesIO(payload)} if payload else {},
        follow=True,
    )
    assert response.status_code in (200, 400)
    assert fragment in response.content.decode().lower()
    at_face_step.refresh_from_db()
    assert at_face_step.state == State.AWAITING_FACE
    assert not at_face_step.face_checks.exists()


def test_too_many_failed_attempts_deny_the_lookup(guardian_client, at_face_step, settings):
    settings.KINGUARD_FACE_ATTEMPTS_PER_LOOKUP = 2
    for _ in range(2):
        submit_face(guardian_client, at_face_step, face_bytes("person_04/02.jpg"))
        run_pending_check(at_face_step)
    assert at_face_step.state == State.DENIED
    assert at_face_step.end_reason == "too_many_face_attempts"
    page = guardian_client.get(reverse("lookups:ended", args=[at_face_step.pk])).content.decode()
    assert "Too many face checks failed" in page


def test_five_consecutive_failures_start_a_growing_delay(guardian, at_face_step, settings):
    import datetime as dt

    from django.utils import timezone

    from lookups import services
    from lookups.audit import Actor

    settings.KINGUARD_FACE_ATTEMPTS_PER_LOOKUP = 10
    user = guardian.user
    waits = []
    for _ in range(7):
        user.refresh_from_db()
        user.face_retry_not_before = None
        user.save()
        services.lookup_submit_face(
            actor=Actor.for_user(user),
            lookup_id=at_face_step.pk,
            session_binding=at_face_step.session_binding,
            images=[face_bytes("person_04/02.jpg")],
        )
        run_pending_check(at_face_step)
        user.refresh_from_db()
        waits.append(user.face_retry_not_before)
    assert waits[:4] == [None] * 4
    now = timezone.now()
    assert waits[4] - now >= dt.timedelta(seconds=29)
    assert (waits[5] - now) > (waits[4] - now) and (waits[6] - now) > (waits[5] - now)
    with pytest.raises(services.LookupRefused) as refused:
        services.lookup_submit_face(
            actor=Actor.for_user(user),
            lookup_id=at_face_step.pk,
            session_binding=at_face_step.session_binding,
            images=[face_bytes("person_01/04.jpg")],
        )
    assert refused.value.code == "face_delay" and refused.value.retry_at == waits[6]


def test_png_with_alpha_upload_is_normalized(guardian_client, at_face_step):
    image = Image.open(io.BytesIO(face_bytes("person_01/04.jpg"))).convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    submit_face(guardian_client, at_face_step, buffer.getvalue(), name="me.png")
    assert run_pending_check(at_face_step).outcome == FaceCheck.Outcome.MATCH
