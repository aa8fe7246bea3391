"""The guardian's whole flow in a real browser with a fake camera and a real Celery worker.

The camera is the genuine live clip (``tests.browser.clips.GENUINE_LOOP``) with prompted
liveness on, as production runs; the guardian is enrolled from the clip's person
(``live_family``). A wrong person is the same live clip with the guardian enrolled from
another person. The two fallback tests refuse the camera, so the clip plays no part there:
they are about the still-photo upload (``KINGUARD_ALLOW_STILL_UPLOAD``), which checks no
liveness by design.
"""

import re

import pytest

from lookups.forms import BURST_FRAMES
from lookups.models import AuditEvent, FaceCheck, LookupRequest
from tests.browser.clips import GENUINE_DOES, OTHER_PERSON_ENROLL, genuine_camera
from tests.browser.conftest import enroll_guardian_from_live_clip, log_in, shot
from tests.helpers import require_faces, totp_now

pytestmark = pytest.mark.timeout(240)
State = LookupRequest.State


def start_and_pass_otp(page, family) -> LookupRequest:
    log_in(page, family.guardian.user.username)
    shot(page, "guardian-1-dashboard")
    page.get_by_role("button", name="Look up results of Zhang Xiuying").click()
    page.wait_for_url(re.compile(r"/otp/$"))
    assert "You are acting for Zhang Xiuying" in page.locator("#acting-for").inner_text()
    assert page.locator(".step").inner_text() == "Step 1 of 3"
    shot(page, "guardian-2-otp")
    page.get_by_label("6-digit code from your authenticator app").fill(totp_now(family.device))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/face/$"))
    return LookupRequest.objects.get(requester=family.guardian.user)


def capture_burst(page) -> None:
    assert page.locator(".step").inner_text() == "Step 2 of 3"
    page.get_by_role("button", name="Start the camera").click()
    page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0")
    page.wait_for_function("() => document.getElementById('camera-hint').textContent.length > 0")
    shot(page, "guardian-3-camera")
    page.get_by_role("button", name="Take the pictures").click()


def test_whole_flow_with_the_camera_shows_results(new_page, live_family, worker_broker):
    family = live_family
    page = new_page(genuine_camera())
    lookup = start_and_pass_otp(page, family)
    capture_burst(page)
    page.wait_for_url(re.compile(r"/results/$"), timeout=60_000)
    assert page.locator("h1").inner_text() == "Test results of Zhang Xiuying"
    assert page.locator(".result").count() == 2
    assert "Negative" in page.locator(".results").inner_text()
    assert "You are acting for Zhang Xiuying" in page.locator("#acting-for").inner_text()
    shot(page, "guardian-5-results")

    lookup.refresh_from_db()
    assert lookup.state == State.GRANTED
    check = lookup.face_checks.get()
    # The worker decided the capture with the prompted-liveness check (the challenge went with it).
    assert check.outcome == FaceCheck.Outcome.MATCH and check.deliveries == 1
    assert check.challenge == GENUINE_DOES
    submitted = AuditEvent.objects.get(action="face.submitted", target_id=str(check.pk))
    assert submitted.details["frames"] == BURST_FRAMES
    assert check.probe_path == ""
    assert AuditEvent.objects.filter(action="results.viewed", subject=family.elder).count() == 1


def test_another_identity_on_camera_is_refused_with_a_retry_path(new_page, family, liveness_on, worker_broker):
    # A live person who does what is asked, but is not the enrolled guardian.
    enroll_guardian_from_live_clip(family, *OTHER_PERSON_ENROLL)
    page = new_page(genuine_camera())
    lookup = start_and_pass_otp(page, family)
    capture_burst(page)
    # The worker refuses (the capture does what is asked: only the match fails); the page
    # moves by itself back to the face step with the reason.
    page.wait_for_function(
        "() => location.pathname.endsWith('/face/') && document.getElementById('last-check') !== null",
        timeout=60_000,
    )
    check = lookup.face_checks.get()
    assert (check.outcome, check.reason_code) == (FaceCheck.Outcome.NO_MATCH, ""), check.reason_code
    assert "did not match" in page.locator("#last-check").inner_text()
    assert page.get_by_role("button", name="Start the camera").is_visible()
    assert "Attempts used for this lookup: 1" in page.content()
    assert "010-6000-1234" in page.locator(".help").inner_text()
    shot(page, "guardian-4-refused")
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_FACE
    assert lookup.face_checks.get().outcome == FaceCheck.Outcome.NO_MATCH
    assert not AuditEvent.objects.filter(action="results.viewed").exists()


def test_refused_camera_permission_falls_back_to_upload(new_page, family, worker_broker, settings):
    settings.KINGUARD_ALLOW_STILL_UPLOAD = True
    faces = require_faces()
    # No fake UI and no granted permission: getUserMedia is refused (NotAllowedError).
    page = new_page("person_01.y4m", fake_ui=False)
    lookup = start_and_pass_otp(page, family)
    page.get_by_role("button", name="Start the camera").click()
    reason = page.locator("#fallback-reason")
    reason.wait_for(state="visible")
    assert "You did not allow the camera" in reason.inner_text()
    assert page.locator("#camera").is_hidden()
    shot(page, "guardian-3b-fallback")
    page.get_by_label("A photo of your face").set_input_files(str(faces / "person_01" / "04.jpg"))
    page.get_by_role("button", name="Check my face").click()
    page.wait_for_url(re.compile(r"/results/$"), timeout=60_000)
    lookup.refresh_from_db()
    assert lookup.state == State.GRANTED
    assert AuditEvent.objects.get(action="face.submitted").details["frames"] == 1


def test_without_still_uploads_the_fallback_explains_a_camera_is_needed(new_page, family, settings):
    settings.KINGUARD_ALLOW_STILL_UPLOAD = False
    page = new_page("person_01.y4m", fake_ui=False)
    start_and_pass_otp(page, family)
    page.get_by_role("button", name="Start the camera").click()
    page.locator("#fallback-reason").wait_for(state="visible")
    assert page.locator("#upload-form").count() == 0
    assert "needs a live camera" in page.locator("#camera-required").inner_text()
    assert "Riverside Community Clinic" in page.locator(".help").inner_text()
    shot(page, "guardian-3c-camera-required")
