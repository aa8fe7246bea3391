"""A capture's decode budget (issue 10.5): oversize frames are refused by their headers.

Attack: twenty ~49-megapixel PNG frames (small on the wire) in one burst, from several
clients at once. Each is refused fast with the retake message, nothing is decoded or
written, and a normal camera burst is still accepted afterwards.
"""

import io
import threading
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, ImageFile

from lookups import capture_budget
from lookups.faces.images import MAX_BURST_FRAMES, MAX_IMAGE_PIXELS
from lookups.forms import FaceBurstForm
from lookups.models import AuditEvent, FaceCheck, LookupRequest
from lookups.selectors import face_reason_message
from tests.helpers import pass_otp, require_faces, start_lookup

State = LookupRequest.State


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    """~49 megapixels, a few hundred KB: under the pipeline's per-image pixel limit."""
    buffer = io.BytesIO()
    Image.new("L", (7000, 7000)).save(buffer, "PNG", optimize=False, compress_level=9)
    data = buffer.getvalue()
    assert MAX_IMAGE_PIXELS > 7000 * 7000 and len(data) < 1_000_000
    return data


def camera_frame(size=(640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 110, 100)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    original = ImageFile.ImageFile.load

    def counting_load(self, *args, **kwargs):
        calls.append(self.size)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    return calls


def burst_form(frames: list[bytes]) -> FaceBurstForm:
    files = [SimpleUploadedFile(f"f{i}.png", data, content_type="image/png") for i, data in enumerate(frames)]
    from django.utils.datastructures import MultiValueDict

    return FaceBurstForm({}, MultiValueDict({"frames": files}))


def test_frame_above_the_capture_resolution_is_refused_by_header(huge_png, count_decodes):
    with pytest.raises(capture_budget.CaptureOverBudget) as exc:
        capture_budget.check_capture([huge_png])
    assert exc.value.code == "too_many_pixels"
    assert count_decodes == []


def test_total_pixels_per_capture_are_capped():
    frame = camera_frame((1920, 1080))  # each frame within the per-frame limit
    per_request = capture_budget.MAX_CAPTURE_PIXELS // (1920 * 1080)
    assert capture_budget.check_capture([frame] * per_request) == per_request * 1920 * 1080
    with pytest.raises(capture_budget.CaptureOverBudget):
        capture_budget.check_capture([frame] * (per_request + 1))


def test_frames_are_counted():
    with pytest.raises(capture_budget.CaptureOverBudget) as exc:
        capture_budget.check_capture([camera_frame((64, 48))] * (capture_budget.MAX_CAPTURE_FRAMES + 1))
    assert exc.value.code == "too_many_frames"


def test_unreadable_header_is_refused_without_decoding():
    with pytest.raises(capture_budget.CaptureOverBudget) as exc:
        capture_budget.check_capture([b"\x89PNG\r\n\x1a\n not really"])
    assert exc.value.code == "not_an_image"


def test_what_the_page_sends_fits_with_margin():
    """camera.js downscales to <= 640 px (any aspect, portrait too): the most frames fit."""
    for size in [(640, 480), (480, 640), (640, 360), (360, 640), (640, 640)]:
        capture_budget.check_capture([camera_frame(size)] * capture_budget.MAX_CAPTURE_FRAMES)


def test_concurrent_oversize_bursts_are_each_refused_fast(huge_png, count_decodes):
    """Eight clients post twenty 49-MP frames at once: all refused, no frame decoded, bounded time."""
    outcomes: list = [None] * 8
    barrier = threading.Barrier(len(outcomes))

    def post(index: int) -> None:
        barrier.wait(timeout=10)
        started = time.monotonic()
        form = burst_form([huge_png] * MAX_BURST_FRAMES)
        outcomes[index] = (form.is_valid(), form.errors.get("frames"), time.monotonic() - started)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(outcomes))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    elapsed = time.monotonic() - started
    assert all(outcome is not None for outcome in outcomes)
    for valid, errors, seconds in outcomes:
        assert not valid and errors == [face_reason_message("too_many_pixels")]
        assert seconds < 2.0
    assert elapsed < 5.0  # decoding them would take ~15 s per request
    assert count_decodes == []


@pytest.mark.django_db
def test_oversize_burst_is_a_400_and_writes_nothing_then_a_real_burst_passes(
    guardian_client, authorization, guardian_device, enrolled_guardian, results, huge_png, count_decodes
):
    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    url = reverse("lookups:face", args=[lookup.pk])
    events = AuditEvent.objects.count()
    files = [SimpleUploadedFile(f"f{i}.png", huge_png, content_type="image/png") for i in range(20)]
    started = time.monotonic()
    response = guardian_client.post(url, {"frames": files}, HTTP_ACCEPT="application/json")
    assert time.monotonic() - started < 3.0
    assert response.status_code == 400
    assert response.json()["error"] == face_reason_message("too_many_pixels")
    assert count_decodes == []
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_FACE and not FaceCheck.objects.filter(lookup=lookup).exists()
    assert AuditEvent.objects.count() == events

    require_faces()
    from tests.lookups.test_face_burst import clip_frames

    frames = clip_frames("person_01.y4m")
    files = [SimpleUploadedFile(f"f{i}.jpg", data, content_type="image/jpeg") for i, data in enumerate(frames)]
    response = guardian_client.post(url, {"frames": files}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    lookup.refresh_from_db()
    assert lookup.state == State.CHECKING_FACE


@pytest.mark.django_db
def test_the_service_applies_the_budget_too(
    guardian_client, authorization, guardian_device, enrolled_guardian, huge_png, count_decodes
):
    from lookups import services
    from lookups.audit import Actor

    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    with pytest.raises(services.LookupRefused) as refused:
        services.lookup_submit_face(
            actor=Actor.for_user(lookup.requester),
            lookup_id=lookup.pk,
            images=[huge_png] * 5,
            session_binding=lookup.session_binding,
        )
    assert refused.value.code == "too_many_pixels" and count_decodes == []
    assert not FaceCheck.objects.filter(lookup=lookup).exists()


def test_a_large_non_jpeg_still_is_refused_by_its_header_and_a_large_jpeg_is_cheap():
    """The still-photo budget: no full decode of a 48 MP PNG/WebP; JPEG is draft-decoded."""
    import io
    import time

    from PIL import Image

    from lookups.faces.errors import ProbeRejected
    from lookups.faces.images import MAX_FULL_DECODE_PIXELS, load_probe_image

    big = Image.new("RGB", (8000, 6000), (120, 100, 90))
    for fmt in ("PNG", "WEBP"):
        buffer = io.BytesIO()
        big.save(buffer, fmt)
        started = time.process_time()
        with pytest.raises(ProbeRejected) as exc:
            load_probe_image(buffer.getvalue())
        assert exc.value.code == "too_many_pixels"
        assert time.process_time() - started < 0.5  # header only (a full decode costs 1-2 s)
    small = io.BytesIO()
    Image.new("RGB", (2000, 1500), (120, 100, 90)).save(small, "PNG")
    assert MAX_FULL_DECODE_PIXELS >= 2000 * 1500
    assert load_probe_image(small.getvalue()).shape[2] == 3
    jpeg = io.BytesIO()
    big.save(jpeg, "JPEG")
    assert max(load_probe_image(jpeg.getvalue()).shape[:2]) <= 800
