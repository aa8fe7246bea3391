"""Simplified Chinese: the committed catalog is complete and compiled, and used end to end."""

import gettext
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation

from lookups import selectors
from tests.helpers import totp_now

PO = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")


@dataclass
class PoEntry:
    context: str | None
    msgid: str
    msgstrs: list[str]
    flags: set[str] = field(default_factory=set)
    locations: list[str] = field(default_factory=list)


def po_catalog(text: str) -> list[PoEntry]:
    """The entries of a .po file (wrapped or not; obsolete ``#~`` entries skipped; no header)."""
    entries: list[PoEntry] = []
    flags: set[str] = set()
    locations: list[str] = []
    fields: dict[str, str] = {}
    current: str | None = None

    def flush() -> None:
        nonlocal flags, locations, fields, current
        if "msgid" in fields and fields["msgid"]:
            strs = [fields[k] for k in sorted(fields) if k.startswith("msgstr")]
            entries.append(PoEntry(fields.get("msgctxt"), fields["msgid"], strs, flags, locations))
        flags, locations, fields, current = set(), [], {}, None

    for line in [*text.splitlines(), ""]:
        if not line.strip():
            flush()
        elif line.startswith("#,"):
            flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#:"):
            locations += line[2:].split()
        elif line.startswith("#"):
            continue
        elif line.startswith('"') and current:
            fields[current] += json.loads(line)
        else:
            keyword, _space, value = line.partition(" ")
            if keyword in fields:  # a new entry without a blank line in between
                flush()
            current = keyword
            fields[keyword] = json.loads(value)
    return entries


def po_entries() -> dict[tuple[str | None, str], str]:
    """(msgctxt, msgid) -> msgstr (the first form) of the committed catalog."""
    return {(e.context, e.msgid): e.msgstrs[0] for e in po_catalog(PO.read_text(encoding="utf-8"))}


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


# --- oversight pages ----------------------------------------------------------------------

# Words allowed to stay Latin on a Chinese page: people's and clinics' names from the
# fixtures, product and standard names, and the admin's own user menu.
LATIN_ALLOWED = re.compile(r"Zhang Xiuying|Li Wei|Riverside|Kinguard|SHA-256|ONC 170|ASTM E2147|CSV|UTC|OTP|IP")
ENGLISH_SENTENCE = re.compile(r"[A-Za-z]{2,}(?:[ ,'’]+[A-Za-z]{2,}){2,}")


def english_sentences(html: str) -> list[str]:
    """Runs of three or more Latin words in the page's visible text (and its attribute texts)."""
    html = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", html)
    visible = re.findall(r'(?:value|placeholder|aria-label|title)="([^"]*)"', html)
    text = " ".join([re.sub(r"<[^>]+>", "\n", html), *visible])
    text = LATIN_ALLOWED.sub(" ", text)
    return sorted(set(ENGLISH_SENTENCE.findall(text)))


@pytest.fixture
def zh_auditor_client(clinic, elder, guardian, authorization, settings):
    """An auditor whose language is zh-Hans; the elder (no account) gets the deployment's
    notice language, zh-Hans by default."""
    from guardians.models import StaffMembership
    from lookups import services as lookup_services
    from lookups.audit import Actor
    from tests import factories
    from tests.helpers import otp_login

    settings.KINGUARD_NOTICE_LANGUAGE = "zh-hans"
    actor = Actor(user=guardian.user, label=guardian.user.username, ip="198.51.100.9", user_agent="phone")
    first = lookup_services.lookup_start(actor=actor, elder_public_id=elder.public_id)
    lookup_services.lookup_cancel(actor=actor, lookup_id=first.pk)
    lookup_services.lookup_start(actor=actor, elder_public_id=elder.public_id)
    auditor = factories.make_staff(clinic, role=StaffMembership.Role.AUDITOR)
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    otp_login(client, auditor)
    return client


def oversight_urls(elder, guardian) -> dict[str, str]:
    return {
        "dashboard": reverse("admin:lookups_auditevent_dashboard"),
        "reports": reverse("admin:lookups_auditevent_reports") + "?q=Zh",
        "elder report": reverse("admin:lookups_auditevent_elder_report", args=[elder.public_id]),
        "guardian activity": reverse("admin:lookups_auditevent_guardian_activity", args=[guardian.public_id]),
        "export": reverse("admin:lookups_auditevent_export"),
        "audit log": reverse("admin:lookups_auditevent_changelist"),
    }


@pytest.mark.django_db
def test_oversight_pages_have_no_english_sentences_in_chinese(zh_auditor_client, elder, guardian):
    for name, url in oversight_urls(elder, guardian).items():
        response = zh_auditor_client.get(url)
        assert response.status_code == 200, name
        page = response.content.decode()
        assert 'lang="en"' not in page, name
        assert english_sentences(page) == [], name


@pytest.mark.django_db
def test_the_printed_elder_report_speaks_chinese_with_labels_and_chinese_dates(zh_auditor_client, elder, guardian):
    page = zh_auditor_client.get(reverse("admin:lookups_auditevent_elder_report", args=[elder.public_id]))
    html = page.content.decode()
    assert '<html lang="zh-hans">' in html and page["Content-Language"] == "zh-hans"
    assert "谁查询了您的检测结果" in html and "已取消" in html and "进行中" in html
    assert "lookup.cancelled" not in html and "results.viewed" not in html
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", html), "dates in the Chinese format"


@pytest.mark.django_db
def test_the_elder_report_follows_the_elders_language_not_the_auditors(zh_auditor_client, elder, guardian, settings):
    settings.KINGUARD_NOTICE_LANGUAGE = "en"  # this elder has no account, so no own choice
    html = zh_auditor_client.get(reverse("admin:lookups_auditevent_elder_report", args=[elder.public_id])).content
    html = html.decode()
    assert '<html lang="en">' in html and "Who looked up your test results" in html and "cancelled" in html
    # while the auditor's own pages stay in Chinese
    assert "审计概览" in zh_auditor_client.get(reverse("admin:lookups_auditevent_dashboard")).content.decode()


def test_action_labels_are_translated_and_unknown_codes_shown_as_is():
    from lookups.oversight.labels import action_label, outcome_label

    with translation.override("zh-hans"):
        assert action_label("authorization.revoked") == "授权已撤销"
        assert outcome_label("cancelled") == "已取消"
        assert action_label("no.such_action") == "no.such_action"
    with translation.override("en"):
        assert action_label("authorization.revoked") == "Authorization revoked"


@pytest.mark.django_db
def test_anomaly_and_notice_list_column_titles_are_translated(zh_auditor_client, clinic):
    from django.utils import timezone

    from lookups.models import AnomalyFlag

    now = timezone.now()
    AnomalyFlag.objects.create(
        rule=AnomalyFlag.Rule.values[0], key="user:1", window_start=now, window_end=now, clinic=clinic
    )
    page = zh_auditor_client.get(reverse("admin:lookups_anomalyflag_changelist")).content.decode()
    titles = re.findall(
        r'<th scope="col"[^>]*>.*?<a [^>]*>([^<]+)</a>|<th scope="col"[^>]*>\s*<div class="text"><span>([^<]+)</span>',
        page,
        re.S,
    )
    titles = [a or b for a, b in titles]
    assert "创建时间" in titles and "规则" in titles and "确认人" in titles, titles
    for english in ("Created", "Rule", "Key", "Count", "Acknowledged by", "Resolved by", "Created at"):
        assert english not in titles, titles


@pytest.mark.django_db
def test_anomaly_and_notice_change_forms_show_translated_labels_not_codes(zh_auditor_client, clinic):
    from django.utils import timezone

    from lookups.models import AnomalyFlag, Notice

    now = timezone.now()
    flag = AnomalyFlag.objects.create(
        rule=AnomalyFlag.Rule.MANY_ELDERS, key="user:1", window_start=now, window_end=now, clinic=clinic
    )
    page = zh_auditor_client.get(reverse("admin:lookups_anomalyflag_change", args=[flag.pk])).content.decode()
    labels = re.findall(r"<label>([^<]+):</label>", page)
    assert "规则" in labels and "时间窗口开始" in labels and "处理说明" in labels, labels
    for english in ("Rule", "Key", "Window start", "Status", "Account", "Details", "Resolution note"):
        assert english not in labels, labels
    with translation.override("zh-hans"):
        rule_label, status_label = str(AnomalyFlag.Rule.MANY_ELDERS.label), str(AnomalyFlag.Status.OPEN.label)
    assert rule_label in page and status_label in page
    assert '<div class="readonly">many_elders</div>' not in page and '<div class="readonly">open</div>' not in page

    notice = Notice.objects.filter(clinic=clinic).first()
    assert notice is not None  # the fixture's authorization notified the elder
    page = zh_auditor_client.get(reverse("admin:lookups_notice_change", args=[notice.pk])).content.decode()
    labels = re.findall(r"<label>([^<]+):</label>", page)
    assert "最近错误" in labels, labels
    for english in ("Kind", "Object key", "Status", "Attempts", "Email to", "Last error", "Context"):
        assert english not in labels, labels
    assert f'<div class="readonly">{notice.kind}</div>' not in page


def test_every_refusal_and_reason_sentence_has_a_chinese_translation():
    from lookups import messages

    entries = po_entries()
    sentences = [
        *messages.REFUSAL_MESSAGES.values(),
        *messages.FACE_REASON_MESSAGES.values(),
        *messages.END_REASONS.values(),
    ]
    with translation.override("en"):  # English is the source language: the text is the msgid
        msgids = [str(sentence) for sentence in sentences]
    assert len(msgids) > 30
    assert [msgid for msgid in msgids if not entries.get((None, msgid))] == []
    with translation.override("zh-hans"):
        assert messages.refusal_message("wrong_code") == entries[(None, msgids[7])]


def test_every_liveness_refusal_code_has_its_own_retake_sentence():
    """Each prompted-liveness refusal tells the user what to retake, not the generic sentence."""
    from lookups import messages
    from lookups.faces.liveness import CAPTURE_CODES

    missing = [code for code in CAPTURE_CODES if code != "no_match" and code not in messages.FACE_REASON_MESSAGES]
    assert missing == []
    with translation.override("zh-hans"):
        assert (
            messages.face_reason_message("challenge_not_done") == "未看到提示您做的动作。请按照屏幕上的提示重新拍摄。"
        )


# --- the catalog cannot silently lose translations ------------------------------------------


def test_the_po_reader_sees_fuzzy_empty_and_wrapped_entries():
    text = (
        'msgid ""\nmsgstr "Language: zh_Hans\\n"\n\n'
        '#: a.py:1\n#, fuzzy, python-format\n#| msgid "Old %(n)s"\nmsgid "New %(n)s"\nmsgstr "新 %(n)s"\n\n'
        '#: b.py:2\nmsgctxt "audit action"\nmsgid ""\n"Wrapped "\n"text"\nmsgstr ""\n\n'
        '#~ msgid "Gone"\n#~ msgstr "没了"\n'
    )
    first, second = po_catalog(text)
    assert (first.msgid, first.flags, first.locations) == ("New %(n)s", {"fuzzy", "python-format"}, ["a.py:1"])
    assert (second.context, second.msgid, second.msgstrs) == ("audit action", "Wrapped text", [""])


def test_no_message_used_in_the_code_is_fuzzy_or_untranslated():
    """gettext ignores fuzzy entries, so a fuzzy or empty one shows Chinese users English."""
    entries = po_catalog(PO.read_text(encoding="utf-8"))
    used = [entry for entry in entries if entry.locations]
    assert len(used) > 700, "the catalog lost its #: locations (run makemessages as the README says)"
    fuzzy = [(e.context, e.msgid) for e in entries if "fuzzy" in e.flags]
    empty = [(e.context, e.msgid) for e in used if not all(e.msgstrs)]
    assert fuzzy == [], "review these, fix the translation and remove the fuzzy flag"
    assert empty == [], "translate these"


def test_placeholders_survive_translation():
    placeholder = re.compile(r"%\([a-z_]+\)[sd]|\{[a-z_0-9]*\}")
    wrong = [
        e.msgid
        for e in po_catalog(PO.read_text(encoding="utf-8"))
        if any(sorted(placeholder.findall(s)) != sorted(placeholder.findall(e.msgid)) for s in e.msgstrs)
    ]
    assert wrong == []


def test_every_audit_action_and_outcome_label_is_extracted_with_its_context():
    """The labels are looked up with a context ("audit action" / "audit outcome"); marked with
    plain gettext, makemessages would drop the context entries and the audit pages would be
    English. So each label must be marked with pgettext_lazy and have its context entry."""
    from lookups.audit_vocabulary import AuditAction
    from lookups.oversight import catalog
    from lookups.oversight.labels import action_label, outcome_label

    entries = po_entries()
    with translation.override("en"):
        actions = {member.value: str(member.label) for member in AuditAction}
        outcomes = {code: str(label) for code, label in catalog.OUTCOMES}
    assert [label for label in actions.values() if not entries.get(("audit action", label))] == []
    assert [label for label in outcomes.values() if not entries.get(("audit outcome", label))] == []
    with translation.override("zh-hans"):
        assert [c for c, label in actions.items() if action_label(c) != entries[("audit action", label)]] == []
        assert [c for c, label in outcomes.items() if outcome_label(c) != entries[("audit outcome", label)]] == []


def _label_calls(source: str, owner: str) -> list[tuple[str, str | None]]:
    """(label, context) of each (code, label) pair in the class or list assigned to ``owner``."""
    import ast

    tree = ast.parse(source)
    (node,) = [
        n
        for n in ast.walk(tree)
        if (isinstance(n, ast.ClassDef) and n.name == owner)
        or (isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == owner)
    ]
    body = node.value if isinstance(node, ast.AnnAssign) else node
    pairs = [t for t in ast.walk(body) if isinstance(t, ast.Tuple) and len(t.elts) == 2]
    calls = []
    for pair in pairs:
        call = pair.elts[1]
        assert isinstance(call, ast.Call), ast.unparse(pair)
        name = getattr(call.func, "id", "")
        context = call.args[0].value if name == "pgettext_lazy" else None
        calls.append((ast.unparse(call.args[-1]), context))
    return calls


def test_labels_are_marked_with_their_context_for_makemessages():
    base = Path(settings.BASE_DIR) / "lookups"
    actions = _label_calls((base / "audit_vocabulary.py").read_text(encoding="utf-8"), "AuditAction")
    outcomes = _label_calls((base / "oversight" / "catalog.py").read_text(encoding="utf-8"), "OUTCOMES")
    assert len(actions) > 70 and len(outcomes) > 40
    assert [label for label, context in actions if context != "audit action"] == []
    assert [label for label, context in outcomes if context != "audit outcome"] == []
