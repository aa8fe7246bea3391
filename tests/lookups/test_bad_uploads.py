"""Bad and unusual photos through the guardian's face page (``lookups:face``).

Never a 500, always a clear message. Files the web process refuses leave nothing behind
(no FaceCheck, no probe file, the lookup still at the face step); files it accepts are
normalized, and the worker's check (run here as the worker would) decides and deletes the
probe. The in-memory builders mirror tests/faces/test_pipeline.py.
"""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from lookups import selectors
from lookups.faces.images import MAX_LONG_SIDE
from lookups.models import AuditEvent, FaceCheck, LookupRequest
from tests.helpers import face_bytes, run_pending_check

pytestmark = pytest.mark.django_db
State = LookupRequest.State


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue", "green")]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _truncated_jpeg() -> bytes:
    data = face_bytes("person_01/04.jpg")
    return data[: len(data) * 2 // 3]


def _photo(name: str = "person_01/04.jpg") -> Image.Image:
    return Image.open(io.BytesIO(face_bytes(name)))


def _cmyk_jpeg() -> bytes:
    return _encode(_photo().convert("CMYK"), "JPEG", quality=92)


def _sixteen_bit_png() -> bytes:
    grey = np.asarray(_photo().convert("L"), dtype=np.uint16) * 257
    return _encode(Image.fromarray(grey), "PNG")


def _png_with_alpha() -> bytes:
    rgba = _photo().convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, np.uint8)
    alpha[:40, :40] = 0
    rgba.putalpha(Image.fromarray(alpha))
    return _encode(rgba, "PNG")


def _exif_rotated_portrait() -> bytes:
    # A portrait photo as a phone stores it: sensor-landscape pixels + "rotate 90 CW" tag.
    stored = _photo("person_01/02.jpg").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(stored, "JPEG", quality=92, exif=exif.tobytes())


def post_photo(client, lookup, data: bytes, name: str, content_type: str = "image/jpeg"):
    return client.post(
        reverse("lookups:face", args=[lookup.pk]),
        {"photo": SimpleUploadedFile(name, data, content_type=content_type)},
        follow=True,
    )


def assert_nothing_written(lookup, probe_dir: Path) -> None:
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_FACE and lookup.face_attempts == 0
    assert not FaceCheck.objects.filter(lookup=lookup).exists()
    assert not probe_dir.exists() or list(probe_dir.iterdir()) == []


REFUSED_BY_THE_WEB = [
    pytest.param(lambda: b"", "me.jpg", "The submitted file is empty", None, id="empty-file"),
    pytest.param(
        lambda: b"just some notes, not a photo\n" * 50,
        "notes.jpg",
        None,
        "not_an_image",
        id="text-renamed-jpg",
    ),
    pytest.param(_truncated_jpeg, "cut.jpg", None, "unreadable", id="truncated"),
    pytest.param(
        lambda: _png_declaring(30000, 30000),
        "bomb.png",
        None,
        "too_many_pixels",
        id="png-30000x30000",
    ),
    pytest.param(
        lambda: b"\xff\xd8\xff\xe0" + b"\0" * (40 * 1024 * 1024),
        "huge.jpg",
        None,
        "too_large",
        id="40-MB",
    ),
    pytest.param(_animated_gif, "moving.gif", None, "animated", id="animated-gif"),
]


@pytest.mark.parametrize(("build", "name", "message", "code"), REFUSED_BY_THE_WEB)
def test_refused_upload_gets_a_clear_message_and_leaves_nothing(
    guardian_client, at_face_step, settings, build, name, message, code
):
    response = post_photo(guardian_client, at_face_step, build(), name)
    assert response.status_code in (200, 400)
    assert response.redirect_chain in ([], [(reverse("lookups:face", args=[at_face_step.pk]), 302)])
    page = response.content.decode()
    message = message or str(selectors.face_reason_message(code))  # the guardian's (translated) wording
    assert message in page.replace("&#x27;", "'")
    assert_nothing_written(at_face_step, Path(settings.PROBE_DIR))
    if code is not None:
        assert AuditEvent.objects.get(action="face.upload_refused").outcome == code


ACCEPTED_AND_NORMALIZED = [
    pytest.param(_cmyk_jpeg, "cmyk.jpg", id="cmyk-jpeg"),
    pytest.param(_sixteen_bit_png, "deep.png", id="16-bit-png"),
    pytest.param(_png_with_alpha, "alpha.png", id="png-with-alpha"),
    pytest.param(_exif_rotated_portrait, "portrait.jpg", id="exif-rotated-portrait"),
]


@pytest.mark.parametrize(("build", "name"), ACCEPTED_AND_NORMALIZED)
def test_unusual_but_valid_photo_is_normalized_and_matches(
    guardian_client, at_face_step, settings, django_capture_on_commit_callbacks, build, name
):
    response = post_photo(guardian_client, at_face_step, build(), name)
    assert response.status_code == 200
    assert response.redirect_chain[0] == (reverse("lookups:wait", args=[at_face_step.pk]), 302)
    with np.load(at_face_step.face_checks.get().probe_path) as archive:
        (frame,) = [archive[key] for key in archive.files]
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert max(frame.shape[:2]) <= MAX_LONG_SIDE
    if name == "portrait.jpg":
        assert frame.shape[0] > frame.shape[1]  # upright, as the EXIF tag says
    with django_capture_on_commit_callbacks(execute=True):
        check = run_pending_check(at_face_step)
    assert check.outcome == FaceCheck.Outcome.MATCH
    assert at_face_step.state == State.GRANTED
    assert list(Path(settings.PROBE_DIR).iterdir()) == []


REFUSED_BY_THE_WORKER = [
    pytest.param("special/small_face.jpg", "face_too_small", "too small", id="tiny-face"),
    pytest.param("special/no_face_dogs.jpg", "no_face", "could not find a face", id="no-face"),
    pytest.param("special/multi_face_crowd.jpg", "multiple_faces", "More than one face", id="several-faces"),
]


@pytest.mark.parametrize(("relative", "code", "message"), REFUSED_BY_THE_WORKER)
def test_photo_the_worker_cannot_decide_on_asks_for_a_retake(
    guardian_client, at_face_step, settings, django_capture_on_commit_callbacks, relative, code, message
):
    response = post_photo(guardian_client, at_face_step, face_bytes(relative), "photo.jpg")
    assert response.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        check = run_pending_check(at_face_step)
    assert (check.outcome, check.reason_code, check.probe_path) == (FaceCheck.Outcome.REJECTED, code, "")
    assert at_face_step.state == State.AWAITING_FACE
    page = guardian_client.get(reverse("lookups:face", args=[at_face_step.pk]))
    assert page.status_code == 200 and message in page.content.decode()
    assert list(Path(settings.PROBE_DIR).iterdir()) == []
