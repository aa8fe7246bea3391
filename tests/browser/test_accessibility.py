"""axe-core on every page of the guardian flow; the progress page's timeout message."""

import re

import pytest

from lookups.models import LookupRequest
from tests.browser.conftest import assert_accessible, log_in, run_check_in_process, shot
from tests.helpers import require_faces, totp_now

pytestmark = pytest.mark.timeout(240)


def test_flow_pages_have_no_serious_axe_violations(new_page, family, settings):
    settings.KINGUARD_ALLOW_STILL_UPLOAD = True
    faces = require_faces()
    page = new_page("person_01.y4m")
    page.clock.install()
    page.goto("/accounts/login/")
    assert_accessible(page, "login")
    shot(page, "a11y-login")
    log_in(page, family.guardian.user.username)
    assert_accessible(page, "dashboard")
    page.get_by_role("button", name="Look up results of Zhang Xiuying").click()
    page.wait_for_url(re.compile(r"/otp/$"))
    assert_accessible(page, "otp")
    page.get_by_label("6-digit code from your authenticator app").fill(totp_now(family.device))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(r"/face/$"))
    assert_accessible(page, "face")
    page.get_by_role("button", name="Start the camera").click()
    page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0")
    assert_accessible(page, "face (camera on)")
    page.get_by_role("button", name="I cannot use the camera").click()
    assert_accessible(page, "face (upload fallback)")
    page.get_by_label("A photo of your face").set_input_files(str(faces / "person_01" / "04.jpg"))
    page.get_by_role("button", name="Check my face").click()
    page.wait_for_url(re.compile(r"/wait/$"))
    assert page.locator("#progress-slow").is_hidden()
    # No worker here: the check stays queued. After 30 s the page says so and offers a way out.
    page.clock.fast_forward("00:31")
    page.locator("#progress-slow").wait_for(state="visible")
    assert page.get_by_role("button", name="Cancel this lookup").is_visible()
    assert "Riverside Community Clinic" in page.locator(".help").inner_text()
    shot(page, "guardian-4b-wait-slow")
    assert_accessible(page, "wait")
    lookup = LookupRequest.objects.get(requester=family.guardian.user)
    assert run_check_in_process(page, lookup) == "match"
    # The page moves on by itself once the verdict is in.
    page.wait_for_url(re.compile(r"/results/$"), timeout=30_000)
    assert_accessible(page, "results")
    page.get_by_role("button", name="Large text").click()
    page.wait_for_selector("html.large-text")
    assert_accessible(page, "results (large text)")
    shot(page, "guardian-5b-results-large")
