"""Issue 13 'Done when': an auditor's zh-Hans walk-through in a real browser.

Sign in to the oversight admin in Simplified Chinese → dashboard → an elder's access report
(in the elder's language, here zh-Hans too) → export page → download the verification bundle
and verify it with the standalone verifier in a separate process with no database settings.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys

import pytest
from django.utils import timezone, translation
from django.utils.translation import gettext

from guardians import services as guardian_services
from guardians.models import StaffMembership
from lookups.audit import Actor
from lookups.oversight.services import person_view_record
from tests import factories
from tests.browser.conftest import PASSWORD, ROOT, shot
from tests.helpers import totp_now

pytestmark = pytest.mark.timeout(240)
CJK = re.compile(r"[\u4e00-\u9fff]")


def zh(message: str) -> str:
    with translation.override("zh-hans"):
        text = gettext(message)
    assert CJK.search(text), f"no zh-Hans translation for {message!r}"
    return text


def assert_zh_page(page, name: str, *phrases: str) -> None:
    assert page.locator("html").get_attribute("lang") == "zh-hans", name
    text = page.locator("body").inner_text()
    for phrase in phrases:
        assert zh(phrase) in text, f"{name}: {zh(phrase)!r} ({phrase!r}) not on the page"
        assert phrase not in text, f"{name}: English {phrase!r} left on the page"
    shot(page, f"auditor-zh-{name}")


@pytest.fixture
def oversight(transactional_db, live_server):
    clinic = factories.ClinicFactory(name="河滨社区卫生服务中心")
    staff = factories.make_staff(clinic)
    auditor = factories.make_staff(clinic, role=StaffMembership.Role.AUDITOR, preferred_language="zh-hans")
    device = guardian_services.totp_device_create(actor=Actor.system("test"), user=auditor, confirmed=True)
    elder = factories.make_person(staff, clinic, "张秀英", elder=True, login=True)
    elder.user.preferred_language = "zh-hans"
    elder.user.save(update_fields=["preferred_language"])
    factories.make_result(staff, elder, result="阴性")
    person_view_record(actor=Actor.for_user(staff), person=elder)  # a staff view in the report
    return clinic, auditor, device, elder


def sign_in_to_admin(page, auditor, device) -> None:
    page.goto("/admin/login/?next=/admin/lookups/auditevent/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert zh("Log in") == page.locator("#login-form input[type=submit]").get_attribute("value")
    page.locator("#id_username").fill(auditor.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#id_otp_token").fill(totp_now(device))
    page.locator("#login-form input[type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/lookups/auditevent/$"))


def test_auditor_walkthrough_in_simplified_chinese(new_page, oversight, tmp_path):
    clinic, auditor, device, elder = oversight
    page = new_page(None, locale="zh-CN")
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in_to_admin(page, auditor, device)

    # 1. The oversight dashboard.
    page.locator("a[href$='/admin/lookups/auditevent/dashboard/']").first.click()
    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert_zh_page(page, "1-dashboard", "Lookups per day by outcome", "The chart data as a table")
    assert CJK.search(page.locator("#kg-dashboard-table caption").inner_text())

    # 2. Back to the audit events (breadcrumb), find the elder, open their access report
    # (in the elder's language: zh-Hans).
    page.locator(".breadcrumbs a[href$='/admin/lookups/auditevent/']").click()
    page.wait_for_url(re.compile(r"/admin/lookups/auditevent/$"))
    page.locator("a[href$='/admin/lookups/auditevent/reports/']").first.click()
    page.wait_for_url(re.compile(r"/reports/$"))
    page.locator("input[name=q]").fill("张")
    page.locator("input[name=q]").press("Enter")
    page.get_by_role("link", name=zh("Access report")).click()
    page.wait_for_url(re.compile(rf"/elder/{elder.public_id}/"))
    assert page.locator("h1").inner_text().strip() == zh("Who looked up your test results")
    assert_zh_page(page, "2-elder-report", "Clinic staff who opened your record", "your registration record")
    assert "张秀英" in page.locator("body").inner_text()

    # 3. The export page; 4. download the verification bundle.
    page.goto("/admin/lookups/auditevent/export/")
    assert_zh_page(page, "3-export", "Download verification bundle (JSONL)")
    today = timezone.localdate()
    page.locator("#id_since").fill((today - dt.timedelta(days=1)).isoformat())
    page.locator("#id_until").fill(today.isoformat())
    with page.expect_download() as download_info:
        page.get_by_role("button", name=zh("Download verification bundle (JSONL)")).click()
    bundle = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(bundle)
    assert bundle.suffix == ".jsonl"
    lines = bundle.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines[1:] if '"event"' in line]
    assert any(e.get("action") == "person.viewed" for e in events), "the staff view of the elder is in it"

    # 5. The standalone verifier, in another process, with no database or Django settings.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    run = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "lookups.audit_verify", str(bundle)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("VERIFIED:"), run.stdout

    # The same verifier refuses the downloaded bundle with one cell altered.
    tampered = tmp_path / "tampered.jsonl"
    changed = [json.loads(line) for line in lines]
    target = next(i for i, item in enumerate(changed) if item.get("action"))
    changed[target]["action"] = "auth.login_failed" if changed[target]["action"] != "auth.login_failed" else "x"
    tampered.write_text("\n".join(json.dumps(item, ensure_ascii=False) for item in changed) + "\n", encoding="utf-8")
    run = subprocess.run(  # noqa: S603 - as above
        [sys.executable, "-m", "lookups.audit_verify", str(tampered)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1 and run.stdout.startswith("NOT VERIFIED"), run.stdout
