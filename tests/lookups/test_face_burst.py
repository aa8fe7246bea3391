"""The camera burst upload (several frames, one form) and the still-photo rule."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from lookups import services
from lookups.audit import Actor
from lookups.faces.burst import y4m_frames
from lookups.models import AuditEvent, FaceCheck, LookupRequest
from tests.helpers import face_bytes, require_faces, run_pending_check, submit_face

pytestmark = pytest.mark.django_db
State = LookupRequest.State


def jpeg(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def clip_frames(name: str, count: int = 5) -> list[bytes]:
    """Every other frame of a fake-webcam clip (5 fps), as the camera page would grab them."""
    frames = y4m_frames(require_faces() / "camera" / name, limit=2 * count)
    return [jpeg(frame) for frame in frames[::2]][:count]


def post_burst(client, lookup, images: list[bytes]):
    files = [SimpleUploadedFile(f"frame-{i}.jpg", data, content_type="image/jpeg") for i, data in enumerate(images)]
    return client.post(reverse("lookups:face", args=[lookup.pk]), {"frames": files}, HTTP_ACCEPT="application/json")


def test_camera_burst_of_the_enrolled_person_matches(guardian_client, at_face_step):
    response = post_burst(guardian_client, at_face_step, clip_frames("person_01.y4m"))
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "error": "", "next": reverse("lookups:wait", args=[at_face_step.pk])}
    assert AuditEvent.objects.get(action="face.submitted").details["frames"] == 5
    check = run_pending_check(at_face_step)
    assert check.outcome == FaceCheck.Outcome.MATCH, (check.reason_code, check.distance)
    assert at_face_step.state == State.GRANTED


def test_camera_burst_of_another_person_does_not_match(guardian_client, at_face_step):
    post_burst(guardian_client, at_face_step, clip_frames("person_04.y4m"))
    check = run_pending_check(at_face_step)
    assert check.outcome == FaceCheck.Outcome.NO_MATCH
    assert at_face_step.state == State.AWAITING_FACE


def test_one_still_sent_five_times_is_refused_as_a_replay(guardian_client, at_face_step):
    still = face_bytes("person_01/04.jpg")
    post_burst(guardian_client, at_face_step, [still] * 5)
    check = run_pending_check(at_face_step)
    assert (check.outcome, check.reason_code) == (FaceCheck.Outcome.REJECTED, "replayed_still")
    page = guardian_client.get(reverse("lookups:face", args=[at_face_step.pk])).content.decode()
    assert "look like a still photo" in page


def test_too_few_frames_get_a_clear_json_error_and_nothing_is_queued(guardian_client, at_face_step):
    response = post_burst(guardian_client, at_face_step, clip_frames("person_01.y4m", count=2))
    assert response.status_code == 400
    assert "too short" in response.json()["error"]
    assert not FaceCheck.objects.exists()


def test_a_broken_frame_is_refused_before_anything_is_written(guardian_client, at_face_step):
    frames = clip_frames("person_01.y4m", count=4) + [b"not a jpeg"]
    response = post_burst(guardian_client, at_face_step, frames)
    assert response.status_code == 400
    assert "not a photo we can read" in response.json()["error"]
    at_face_step.refresh_from_db()
    assert at_face_step.state == State.AWAITING_FACE and not FaceCheck.objects.exists()


def test_still_photo_refused_where_the_deployment_forbids_it(guardian_client, guardian, at_face_step, settings):
    settings.KINGUARD_ALLOW_STILL_UPLOAD = False
    page = guardian_client.get(reverse("lookups:face", args=[at_face_step.pk])).content.decode()
    assert 'id="upload-form"' not in page and "needs a live camera" in page
    response = submit_face(guardian_client, at_face_step, face_bytes("person_01/04.jpg"))
    assert response.status_code == 302
    assert not FaceCheck.objects.exists()
    # The service refuses too, whatever the caller.
    with pytest.raises(services.LookupRefused) as refused:
        services.lookup_submit_face(
            actor=Actor.for_user(guardian.user),
            lookup_id=at_face_step.pk,
            session_binding=at_face_step.session_binding,
            images=[face_bytes("person_01/04.jpg")],
        )
    assert refused.value.code == "still_not_allowed"


def test_still_photo_allowed_where_the_deployment_allows_it(guardian_client, at_face_step, settings):
    settings.KINGUARD_ALLOW_STILL_UPLOAD = True
    page = guardian_client.get(reverse("lookups:face", args=[at_face_step.pk])).content.decode()
    assert 'id="upload-form"' in page
    response = submit_face(guardian_client, at_face_step, face_bytes("person_01/04.jpg"))
    assert response.url == reverse("lookups:wait", args=[at_face_step.pk])


def test_status_json_reports_the_outcome_and_next_step(guardian_client, at_face_step):
    post_burst(guardian_client, at_face_step, clip_frames("person_04.y4m"))
    status = guardian_client.get(reverse("lookups:status", args=[at_face_step.pk])).json()
    assert status["done"] is False and status["state"] == State.CHECKING_FACE and status["message"] == ""
    run_pending_check(at_face_step)
    status = guardian_client.get(reverse("lookups:status", args=[at_face_step.pk])).json()
    assert status["done"] is True and status["outcome"] == "no_match"
    assert status["next"] == reverse("lookups:face", args=[at_face_step.pk])
    assert "did not match" in status["message"]
