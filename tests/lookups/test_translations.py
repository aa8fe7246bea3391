"""Simplified Chinese: the committed catalog is complete and compiled, and used end to end."""

import gettext
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from lookups import selectors
from tests.conftest import totp_now

PO = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")


def po_entries() -> dict[tuple[str | None, str], str]:
    """(msgctxt, msgid) -> msgstr of a .po file written without line wrapping (as committed)."""
    import json

    entries, context, msgid = {}, None, None
    for line in PO.read_text(encoding="utf-8").splitlines():
        if line.startswith("msgctxt "):
            context = json.loads(line[8:])
        elif line.startswith("msgid "):
            msgid = json.loads(line[6:])
        elif line.startswith(("msgstr ", "msgstr[0] ")) and msgid:
            entries[(context, msgid)] = json.loads(line.split(" ", 1)[1])
            context = msgid = None
    return entries


def test_every_message_is_translated_and_the_mo_matches_the_po():
    entries = po_entries()
    assert len(entries) > 150
    assert [key for key, msgstr in entries.items() if not msgstr] == []
    with MO.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)

    def compiled(key):
        context, msgid = key
        return catalog.pgettext(context, msgid) if context else catalog.gettext(msgid)

    stale = [key for key, msgstr in entries.items() if compiled(key) != msgstr]
    assert stale == [], "run `manage.py compilemessages` (the .mo is older than the .po)"


def test_selector_and_service_messages_follow_the_active_language():
    with translation.override("zh-hans"):
        assert selectors.face_reason_message("too_dark") == "照片太暗，请到明亮的地方重新拍摄。"
    with translation.override("en"):
        assert selectors.face_reason_message("too_dark").startswith("The photo is too dark")


@pytest.mark.django_db
def test_a_refused_code_is_explained_in_chinese(guardian, authorization, guardian_device):
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    client.force_login(guardian.user)
    client.post(reverse("lookups:start", args=[authorization.elder.public_id]))
    lookup = guardian.user.lookups.get()
    wrong = f"{(int(totp_now(guardian_device)) + 1) % 1_000_000:06d}"
    page = client.post(reverse("lookups:otp", args=[lookup.pk]), {"token": wrong}, follow=True).content.decode()
    assert "验证码不正确" in page
    assert "第 1 步，共 3 步" in page and "您正在代 Zhang Xiuying 查询" in page
