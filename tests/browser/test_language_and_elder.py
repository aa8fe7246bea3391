"""Simplified Chinese through the whole flow; elder mode; the elder's own pages."""

import re

import pytest

from guardians.models import Authorization
from lookups import services
from lookups.audit import Actor
from lookups.models import AuditEvent, LookupRequest
from tests.browser.clips import genuine_camera
from tests.browser.conftest import PASSWORD, assert_accessible, log_in, run_check_in_process, shot
from tests.helpers import face_bytes, totp_now

pytestmark = pytest.mark.timeout(240)
CJK = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_UI = ("Sign out", "Large text", "Step ", "Cancel this lookup", "Need help", "You are acting for", "Sign in")


def assert_chinese(page, name: str) -> None:
    heading = page.locator("h1").inner_text()
    assert CJK.search(heading), f"{name}: heading is not Chinese: {heading!r}"
    text = page.locator("body").inner_text()
    leftovers = [phrase for phrase in ENGLISH_UI if phrase in text]
    assert leftovers == [], f"{name}: English left on the page: {leftovers}"
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    shot(page, f"zh-{name}")


def test_the_flow_in_simplified_chinese(new_page, live_family):
    # The genuine live clip with liveness on (tests/browser/clips.py), as production runs.
    family = live_family
    page = new_page(genuine_camera())
    page.clock.install()
    page.goto("/accounts/login/")
    page.get_by_role("button", name="简体中文").click()
    page.wait_for_load_state()
    assert_chinese(page, "1-login")
    page.get_by_label("用户名").fill(family.guardian.user.username)
    page.get_by_label("密码").fill(PASSWORD)
    page.locator("#main button[type=submit]").click()
    page.wait_for_url(re.compile(r"/lookups/$"))
    assert_chinese(page, "2-dashboard")
    page.get_by_role("button", name="查询 Zhang Xiuying 的结果").click()
    page.wait_for_url(re.compile(r"/otp/$"))
    assert_chinese(page, "3-otp")
    assert page.locator("#acting-for").inner_text().strip() == "您正在代 Zhang Xiuying 查询"
    assert page.locator(".step").inner_text() == "第 1 步，共 3 步"
    page.get_by_label("身份验证器应用中的 6 位验证码").fill(totp_now(family.device))
    page.get_by_role("button", name="继续").click()
    page.wait_for_url(re.compile(r"/face/$"))
    assert_chinese(page, "4-face")
    assert [t.strip() for t in page.locator("#challenge .challenge-text").all_inner_texts()] == ["请眨眨眼"]
    page.get_by_role("button", name="打开摄像头").click()
    page.wait_for_function("() => document.getElementById('camera-hint').textContent.length > 0")
    assert CJK.search(page.locator("#camera-hint").inner_text())
    shot(page, "zh-4b-camera")
    page.get_by_role("button", name="开始拍摄").click()
    page.wait_for_url(re.compile(r"/wait/$"), timeout=30_000)
    assert_chinese(page, "5-wait")
    lookup = LookupRequest.objects.get(requester=family.guardian.user)
    assert run_check_in_process(page, lookup) == "match"
    page.wait_for_url(re.compile(r"/results/$"), timeout=30_000)
    assert_chinese(page, "6-results")
    assert "核酸（PCR）" in page.locator(".results").inner_text()
    # Dates in the Chinese locale format, in Asia/Shanghai time.
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", page.locator(".results").inner_text())


def make_history(family, settings) -> LookupRequest:
    """A guardian's finished lookup of the elder, through the services (as the web would)."""
    settings.KINGUARD_ALLOW_STILL_UPLOAD = True
    actor = Actor.for_user(family.guardian.user)
    lookup = services.lookup_start(actor=actor, elder_public_id=family.elder.public_id)
    services.lookup_verify_otp(actor=actor, lookup_id=lookup.pk, token=totp_now(family.device))
    check = services.lookup_submit_face(actor=actor, lookup_id=lookup.pk, images=[face_bytes("person_01/04.jpg")])
    assert services.face_check_run(check_id=check.pk) == "match"
    services.results_view(actor=actor, lookup_id=lookup.pk)
    return lookup


def test_elder_pages_large_text_and_removal_request(new_page, family, settings):
    make_history(family, settings)
    elder_user = family.elder.user
    page = new_page(None)
    log_in(page, elder_user.username)
    body_size = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    h1_size = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")
    shot(page, "elder-1-dashboard")
    page.get_by_role("button", name="Large text").click()
    page.wait_for_selector("html.large-text")
    large_body = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    large_h1 = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")
    assert large_body >= body_size * 1.2 and large_h1 >= h1_size * 1.2, (body_size, large_body, h1_size, large_h1)
    assert page.get_by_role("button", name="Large text").get_attribute("aria-pressed") == "true"
    elder_user.refresh_from_db()
    assert elder_user.large_text is True
    shot(page, "elder-2-dashboard-large")
    assert_accessible(page, "elder dashboard (large text)")

    page.get_by_role("link", name="Who looked me up").click()
    page.wait_for_url(re.compile(r"/me/looked-up/$"))
    item = page.locator(".history-item").first
    assert "Li Wei" in item.inner_text() and "Saw the results" in item.inner_text()
    assert "127.0.0.1" not in page.content()  # never an IP address for the elder
    shot(page, "elder-3-looked-me-up")
    assert_accessible(page, "who looked me up")

    page.get_by_role("link", name="My guardians").first.click()
    page.wait_for_url(re.compile(r"/me/guardians/$"))
    assert "Li Wei" in page.locator(".cards").inner_text()
    assert_accessible(page, "my guardians")
    page.get_by_role("button", name="Ask to remove Li Wei").click()
    page.wait_for_url(re.compile(r"/me/guardians/$"))
    assert "Your request was sent to the clinic" in page.locator(".message").first.inner_text()
    shot(page, "elder-4-guardians-requested")
    event = AuditEvent.objects.get(action="authorization.removal_requested")
    assert event.subject_id == family.elder.pk and event.clinic_id == family.clinic.pk
    assert event.target_id == str(family.authorization.pk)
    # A request only: the authorization stays active until staff revoke it in person.
    assert Authorization.objects.get(pk=family.authorization.pk).status == Authorization.Status.ACTIVE

    # Language chosen while signed in is remembered on the account and used at the next sign-in.
    page.get_by_role("button", name="简体中文").click()
    page.wait_for_selector("html[lang=zh-hans]")
    elder_user.refresh_from_db()
    assert elder_user.preferred_language == "zh-hans"
    fresh = new_page(None)
    log_in(fresh, elder_user.username)
    assert fresh.locator("html").get_attribute("lang") == "zh-hans"
    assert fresh.locator("html.large-text").count() == 1
    assert CJK.search(fresh.locator("h1").inner_text())
