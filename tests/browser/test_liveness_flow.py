"""Prompted liveness in real Chromium (issue 11): a fake camera playing a real live clip.

The camera plays ``GENUINE_LOOP`` (``tests/browser/clips.py``: y4m built at test time from
``<faces>/live/clip_13`` frames into a cache outside the repo; the person blinks in every
3.5 s window of the loop). The live server runs with ``KINGUARD_FACE_LIVENESS`` on and the
challenge fixed by ``KINGUARD_FACE_CHALLENGE_FIXED``; a real Celery worker decides the capture
with ``faces.check_capture``. The guardian is enrolled from frames of the same video outside
the loop. A zoom/pan video of one still (``<faces>/camera/person_01.y4m``, the guardian's own
photo) is the attack side: liveness refuses it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lookups.forms import BURST_FRAMES
from lookups.messages import face_reason_message
from lookups.models import AuditEvent, FaceChallenge, FaceCheck, LookupRequest
from tests.browser.clips import GENUINE_DOES, GENUINE_DOES_NOT, GENUINE_LOOP, genuine_camera, y4m_header
from tests.browser.conftest import shot
from tests.browser.test_guardian_flow import start_and_pass_otp

pytestmark = pytest.mark.timeout(240)
State = LookupRequest.State
PROMPTS = {"blink": "Blink slowly", "turn_left": "Turn your head left"}


# Injected through the DevTools protocol (the page's CSP stays on): what the page's fetch sends.
RECORD_FETCH = """
(() => {
  const original = window.fetch;
  window.fetch = function (url, options) {
    const body = options && options.body;
    if (body instanceof FormData) {
      const frames = body.getAll("frames");
      window.__kgSent = {
        frames: frames.length,
        challenge: body.get("challenge"),
        types: frames.map((f) => f.type),
      };
    }
    return original.apply(this, arguments);
  };
})();
"""


def open_camera_and_record(page) -> None:
    page.get_by_role("button", name="Start the camera").click()
    page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0")
    page.get_by_role("button", name="Take the pictures").click()


def is_face_post(request) -> bool:
    return request.method == "POST" and request.url.endswith("/face/")


def test_the_clip_is_a_4_3_y4m_chromium_reads():
    path = Path(genuine_camera())
    assert path.is_absolute() and path.stat().st_size > 0
    header = y4m_header(path)
    # 640x480: what the page asks for, so Chromium does not crop a band out of the face.
    assert header.startswith("YUV4MPEG2 W640 H480 ") and " F10:1 " in header and "C420" in header
    frame_bytes = 640 * 480 * 3 // 2
    assert (path.stat().st_size - len(header) - 1) % (frame_bytes + len(b"FRAME\n")) == 0
    assert (path.stat().st_size - len(header) - 1) // (frame_bytes + len(b"FRAME\n")) == len(GENUINE_LOOP[1])


def test_the_prompt_is_shown_and_the_capture_uploads_all_frames_with_the_nonce(new_page, family, settings):
    settings.KINGUARD_FACE_CHALLENGE_FIXED = "blink,turn_left"
    page = new_page(genuine_camera())
    page.add_init_script(RECORD_FETCH)
    lookup = start_and_pass_otp(page, family)
    challenge = FaceChallenge.objects.get(lookup=lookup)
    steps = page.locator("#challenge .challenge-step")
    assert steps.count() == 2
    assert steps.nth(0).inner_text().strip().endswith("Blink slowly")
    assert steps.nth(1).inner_text().strip().endswith("Turn your head left")
    assert steps.nth(0).locator(".icon-blink").count() == 1
    font_px = float(steps.nth(0).evaluate("e => parseFloat(getComputedStyle(e).fontSize)"))
    assert font_px >= 24  # large
    page.get_by_role("button", name="Start the camera").click()
    page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0")
    with page.expect_request(is_face_post, timeout=30_000) as posted:
        page.get_by_role("button", name="Take the pictures").click()
        # While recording, the step to do now is shown large over the preview, in order.
        page.wait_for_function(
            "() => document.getElementById('camera-prompt').textContent === 'Blink slowly'", timeout=5_000
        )
        page.wait_for_function(
            "() => document.getElementById('camera-prompt').textContent === 'Turn your head left'", timeout=8_000
        )
    assert posted.value.headers.get("content-type", "").startswith("multipart/form-data")
    # Chromium gives no body for a FormData of blobs to the protocol: the page's own record.
    sent = page.evaluate("() => window.__kgSent")
    assert sent["frames"] == BURST_FRAMES == 35
    assert sent["challenge"] == challenge.nonce
    assert set(sent["types"]) == {"image/jpeg"}
    assert posted.value.response().status == 200  # the server's answer, before reading the DB
    page.wait_for_url(re.compile(r"/wait/$"))  # the page moves on only on {"ok": true}
    # Server side: the capture reached the face service with all its frames.
    submitted = AuditEvent.objects.get(action="face.submitted", subject=family.elder)
    assert submitted.details["frames"] == 35
    page.clock.pause_at(page.evaluate("Date.now()") + 50)  # the wait page's polling stops
    page.wait_for_load_state("networkidle")


def test_the_prompt_is_in_chinese_and_a_reload_keeps_it(new_page, family, settings, live_server):
    settings.KINGUARD_FACE_CHALLENGE_FIXED = "open_mouth,turn_right"
    page = new_page(genuine_camera())
    lookup = start_and_pass_otp(page, family)
    page.context.add_cookies([{"name": settings.LANGUAGE_COOKIE_NAME, "value": "zh-hans", "url": live_server.url}])
    page.reload()
    texts = [t.strip() for t in page.locator("#challenge .challenge-text").all_inner_texts()]
    assert texts == ["请张张嘴", "请向右转头"]
    assert FaceChallenge.objects.filter(lookup=lookup).count() == 1  # the reload showed the same one


def record_and_see_the_prompt(page, action: str) -> None:
    """Record, and check the step shown large over the preview while recording."""
    open_camera_and_record(page)
    page.wait_for_function(
        "text => document.getElementById('camera-prompt').textContent === text", arg=PROMPTS[action], timeout=5_000
    )


def wait_for_refusal(page) -> str:
    """The worker refuses; the page moves back to the face step by itself: the shown reason."""
    page.wait_for_function(
        "() => location.pathname.endsWith('/face/') && document.getElementById('last-check') !== null",
        timeout=90_000,
    )
    return page.locator("#last-check").inner_text().strip()


def test_a_live_clip_answering_the_prompt_shows_the_results(new_page, live_family, worker_broker):
    page = new_page(genuine_camera())
    lookup = start_and_pass_otp(page, live_family)
    challenge = FaceChallenge.objects.get(lookup=lookup)
    assert challenge.actions == GENUINE_DOES
    texts = [t.strip() for t in page.locator("#challenge .challenge-text").all_inner_texts()]
    assert texts == [PROMPTS[GENUINE_DOES]]
    record_and_see_the_prompt(page, GENUINE_DOES)
    page.wait_for_url(re.compile(r"/results/$"), timeout=90_000)
    assert page.locator("h1").inner_text() == "Test results of Zhang Xiuying"
    assert page.locator(".result").count() == 2
    assert "Negative" in page.locator(".results").inner_text()
    shot(page, "liveness-1-results")
    lookup.refresh_from_db()
    assert lookup.state == State.GRANTED
    check = lookup.face_checks.get()
    # Decided by the prompted-liveness check (the challenge went with the check), not the old burst.
    assert (check.outcome, check.challenge, check.reason_code) == (FaceCheck.Outcome.MATCH, GENUINE_DOES, "")
    assert AuditEvent.objects.get(action="face.submitted", target_id=str(check.pk)).details["frames"] == BURST_FRAMES
    challenge.refresh_from_db()
    assert challenge.used_at is not None


def test_a_live_clip_that_does_not_do_the_prompt_is_refused_with_the_retake_message(
    new_page, live_family, worker_broker, settings
):
    settings.KINGUARD_FACE_CHALLENGE_FIXED = GENUINE_DOES_NOT  # the loop never turns its head
    page = new_page(genuine_camera())
    lookup = start_and_pass_otp(page, live_family)
    record_and_see_the_prompt(page, GENUINE_DOES_NOT)
    shown = wait_for_refusal(page)
    check = lookup.face_checks.get()
    assert (check.outcome, check.reason_code) == (FaceCheck.Outcome.REJECTED, "challenge_not_done")
    assert shown == face_reason_message("challenge_not_done")
    assert "Attempts used for this lookup: 1" in page.content()
    shot(page, "liveness-2-challenge-not-done")
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_FACE and lookup.face_attempts == 1
    assert not AuditEvent.objects.filter(action="results.viewed").exists()
    # The retake gets a new challenge (the first one was used), shown on the page.
    fresh = FaceChallenge.objects.get(lookup=lookup, used_at__isnull=True)
    assert page.locator("[data-challenge]").get_attribute("data-challenge") == fresh.nonce


def test_a_zoom_pan_video_of_the_guardians_photo_is_refused(new_page, family, liveness_on, worker_broker):
    # The guardian is enrolled from person_01's photos; the camera plays a zoom/pan of another
    # photo of them (what a relative holding up a photo produces): the face would match, the
    # liveness check must refuse it.
    page = new_page("person_01.y4m")
    lookup = start_and_pass_otp(page, family)
    record_and_see_the_prompt(page, GENUINE_DOES)
    shown = wait_for_refusal(page)
    check = lookup.face_checks.get()
    assert check.outcome == FaceCheck.Outcome.REJECTED
    assert check.reason_code in ("flat_surface", "challenge_not_done", "not_continuous"), check.reason_code
    assert shown == face_reason_message(check.reason_code)
    shot(page, "liveness-3-zoom-pan-refused")
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_FACE
    assert not AuditEvent.objects.filter(action="results.viewed").exists()
