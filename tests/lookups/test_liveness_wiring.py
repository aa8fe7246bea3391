"""The face step with prompted liveness switched on (production's setting, issue 11).

The page's challenge nonce is consumed once by the submission; the worker decides the capture
with ``faces.check_capture`` against the challenge stored on the check. Real frames: a live
clip (genuine) and a zoom/pan clip of one still (a photo moved in front of the camera).
"""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from lookups import faces
from lookups.faces.burst import y4m_frames
from lookups.faces.images import load_probe_image
from lookups.models import AuditEvent, FaceChallenge, FaceCheck, LookupRequest
from lookups.services import face_checks
from tests.helpers import require_faces, run_pending_check

pytestmark = pytest.mark.django_db
State = LookupRequest.State


@pytest.fixture(autouse=True)
def liveness_on(settings):
    settings.KINGUARD_FACE_LIVENESS = True
    settings.KINGUARD_FACE_CHALLENGE_FIXED = "blink"


def _jpeg(image: Image.Image) -> bytes:
    image = image.convert("RGB")
    image.thumbnail((640, 640))  # what camera.js sends
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def live_frames(clip: str, start: int, count: int = 35) -> list[bytes]:
    files = sorted((require_faces() / "live" / clip).glob("*.jpg"))[start : start + count]
    return [_jpeg(Image.open(path)) for path in files]


def zoom_pan_frames(count: int = 35) -> list[bytes]:
    frames = y4m_frames(require_faces() / "camera" / "person_01.y4m", limit=count)
    return [_jpeg(Image.fromarray(frame)) for frame in frames]


def page_nonce(client, lookup) -> str:
    assert client.get(reverse("lookups:face", args=[lookup.pk])).status_code == 200
    return FaceChallenge.objects.filter(lookup=lookup, used_at=None).latest("created_at").nonce


def post_capture(client, lookup, images: list[bytes], nonce: str | None):
    files = [SimpleUploadedFile(f"frame-{i}.jpg", data, content_type="image/jpeg") for i, data in enumerate(images)]
    data = {"frames": files}
    if nonce is not None:
        data["challenge"] = nonce
    return client.post(reverse("lookups:face", args=[lookup.pk]), data, HTTP_ACCEPT="application/json")


def test_a_capture_without_the_pages_challenge_is_refused(guardian_client, at_face_step):
    response = post_capture(guardian_client, at_face_step, zoom_pan_frames(5), nonce=None)
    assert response.status_code == 400
    assert not FaceCheck.objects.filter(lookup=at_face_step).exists()
    assert AuditEvent.objects.filter(action="face.challenge_refused", outcome="challenge_unknown").exists()


def test_a_photo_moved_in_front_of_the_camera_is_refused_and_its_nonce_cannot_be_replayed(
    guardian_client, at_face_step
):
    nonce = page_nonce(guardian_client, at_face_step)
    frames = zoom_pan_frames()
    assert post_capture(guardian_client, at_face_step, frames, nonce).status_code == 200
    check = FaceCheck.objects.get(lookup=at_face_step)
    assert check.challenge == "blink"
    assert AuditEvent.objects.get(action="face.submitted").details["liveness"] == "blink"
    check = run_pending_check(at_face_step)
    assert check.outcome == FaceCheck.Outcome.REJECTED
    assert check.reason_code in ("flat_surface", "challenge_not_done"), check.reason_code
    assert at_face_step.state == State.AWAITING_FACE and at_face_step.face_attempts == 1
    replay = post_capture(guardian_client, at_face_step, frames, nonce)
    assert replay.status_code == 400
    assert FaceCheck.objects.filter(lookup=at_face_step).count() == 1
    assert AuditEvent.objects.filter(action="face.challenge_refused", outcome="challenge_used").exists()


def test_a_live_capture_answering_the_challenge_is_granted(guardian_client, at_face_step, monkeypatch):
    # The guardian enrolled from this clip's person (frames from another moment of the video).
    enrollment = [load_probe_image(data) for data in live_frames("clip_06", 0, 5)]
    template = faces.build_template_from_images(enrollment)
    monkeypatch.setattr(face_checks, "face_template_of", lambda person: template)
    nonce = page_nonce(guardian_client, at_face_step)
    assert post_capture(guardian_client, at_face_step, live_frames("clip_06", 47), nonce).status_code == 200
    check = run_pending_check(at_face_step)
    assert check.outcome == FaceCheck.Outcome.MATCH, (check.reason_code, check.distance)
    assert at_face_step.state == State.GRANTED


def test_a_live_capture_that_does_not_do_what_was_asked_is_refused(
    guardian_client, at_face_step, monkeypatch, settings
):
    settings.KINGUARD_FACE_CHALLENGE_FIXED = "turn_left"
    enrollment = [load_probe_image(data) for data in live_frames("clip_13", 0, 5)]
    monkeypatch.setattr(face_checks, "face_template_of", lambda person: faces.build_template_from_images(enrollment))
    nonce = page_nonce(guardian_client, at_face_step)
    assert post_capture(guardian_client, at_face_step, live_frames("clip_13", 0), nonce).status_code == 200
    check = run_pending_check(at_face_step)
    assert check.outcome == FaceCheck.Outcome.REJECTED
    assert check.reason_code == "challenge_not_done"
    assert at_face_step.state == State.AWAITING_FACE
