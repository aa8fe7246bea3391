"""The closed audit vocabulary (issue 12): every action the code writes is a member, an
unknown action is refused, and each report includes what its name promises."""

import ast
import datetime as dt
import pathlib
import re

import pytest
from django.utils import timezone

from lookups.audit import Actor, audit_record
from lookups.audit_vocabulary import (
    INFO,
    LEGACY_ACTIONS,
    AuditAction,
    Report,
    UnknownAuditAction,
    stored_values,
)
from lookups.models import AuditEvent
from lookups.oversight import catalog, selectors

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = [path for app in ("guardians", "lookups", "config") for path in (ROOT / app).rglob("*.py")]
PREFIXES = {member.value.split(".")[0] for member in AuditAction}
ACTION_SHAPE = re.compile(r"^[a-z_]+\.[a-z_]+$")


def _string_constants(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_every_member_has_category_and_reports():
    assert set(INFO) == set(AuditAction)
    assert all(Report.EXPORT in info.reports and info.category for info in INFO.values())


def test_every_action_written_in_the_code_is_in_the_vocabulary():
    """Scan the source: every literal passed as ``action=`` and every string shaped like an
    action (``prefix.name`` with a vocabulary prefix) names a member or a legacy name."""
    written, unknown = set(), set()
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "action":
                for value in _string_constants(node.value):
                    if ACTION_SHAPE.match(value):
                        written.add(value)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value
                if ACTION_SHAPE.match(value) and value.split(".")[0] in PREFIXES and not value.endswith("urls"):
                    written.add(value)
    known = {member.value for member in AuditAction} | set(LEGACY_ACTIONS)
    unknown = written - known
    assert not unknown, f"actions written but not in AuditAction: {sorted(unknown)}"
    assert len(written & {m.value for m in AuditAction}) >= 60


@pytest.mark.django_db
def test_unknown_action_is_refused_and_nothing_written():
    before = AuditEvent.objects.count()
    with pytest.raises(UnknownAuditAction):
        audit_record(actor=Actor.system("t"), action="lookup.strated")
    with pytest.raises(UnknownAuditAction):
        audit_record(actor=Actor.system("t"), action="staff.signed_in")  # legacy: readable, not writable
    assert AuditEvent.objects.count() == before
    assert audit_record(actor=Actor.system("t"), action=AuditAction.LOOKUP_STARTED).action == "lookup.started"


def test_legacy_sign_in_name_reads_as_the_one_sign_in_action():
    assert catalog.action_label("staff.signed_in") == catalog.action_label("login.succeeded")
    assert catalog.action_category("staff.signed_in") == "login"
    assert {"staff.signed_in", "login.succeeded", "login.failed"} <= catalog.SIGN_IN_ACTIONS
    assert "staff.signed_in" not in dict(catalog.action_choices())


def test_filter_choices_and_catalog_derive_from_the_vocabulary():
    assert {value for value, _ in catalog.action_choices()} == {m.value for m in AuditAction}
    assert set(catalog.ACTIONS) == {m.value for m in AuditAction}


def test_staff_views_of_the_record_are_in_the_elder_report_vocabulary():
    """The report promises every staff look at the elder's record and results."""
    expected = {
        "person.viewed",
        "result.viewed_by_staff",
        "result.sampling_photo_viewed",
        "authorization.viewed",
        "audit.report_viewed",
    }
    assert expected <= stored_values(Report.STAFF_VIEW) <= stored_values(Report.ELDER)
    reads = {m.value for m, info in INFO.items() if info.category == "read" and m.value != "results.viewed"}
    assert reads <= stored_values(Report.STAFF_VIEW), "a staff read missing from the per-elder report"


@pytest.mark.django_db
def test_elder_report_shows_every_action_it_promises(auditor, elder, staff):
    """One event per ELDER member about the elder: each appears in its section of the report."""
    sections = {
        Report.LOOKUP: "lookups",
        Report.STAFF_VIEW: "staff_views",
        Report.AUTHORIZATION: "authorization_changes",
        Report.NOTICE: "notices",
    }
    members = [m for m, info in INFO.items() if Report.ELDER in info.reports]
    actor = Actor.for_user(staff)
    written = {}
    for member in members:
        event = audit_record(actor=actor, action=member, subject=elder, clinic=elder.clinic)
        written[member] = event
    # a staff view of another elder is not in this elder's report
    start = timezone.now() - dt.timedelta(hours=1)
    report = selectors.elder_report(auditor, elder, start, timezone.now() + dt.timedelta(hours=1))
    in_lookup_rows = {seq for row in report.lookups for seq in row.sequences}
    for member in members:
        section = next(s for s in sections if s in INFO[member].reports)
        sequence = written[member].sequence
        if section is Report.LOOKUP:
            assert sequence in in_lookup_rows, member
        else:
            assert sequence in {e.sequence for e in getattr(report, sections[section])}, member


@pytest.mark.django_db
def test_elder_report_shows_staff_views_through_the_real_services(auditor, staff, manager, guardian, elder):
    """Through the services staff pages call: person, result, sampling photo and
    authorization views of this elder all appear among the report's staff views."""
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from lookups import services as lookup_services
    from lookups.oversight import services as oversight_services
    from tests import factories

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, format="PNG")
    result = factories.make_result(staff, elder, sampling_photo=SimpleUploadedFile("p.png", buffer.getvalue()))
    authorization = factories.make_active_authorization(staff, manager, guardian, elder)
    actor = Actor.for_user(staff)
    oversight_services.person_view_record(actor=actor, person=elder)
    oversight_services.result_view_record(actor=actor, result=result)
    oversight_services.authorization_view_record(actor=actor, authorization=authorization)
    handle, _ = lookup_services.result_sampling_photo_open(
        actor=actor, result_id=result.pk, reason="Elder disputes the sample identity"
    )
    handle.close()
    start = timezone.now() - dt.timedelta(hours=1)
    report = selectors.elder_report(auditor, elder, start, timezone.now() + dt.timedelta(hours=1))
    shown = {event.action for event in report.staff_views}
    assert {
        "person.viewed",
        "result.viewed_by_staff",
        "authorization.viewed",
        "result.sampling_photo_viewed",
    } <= shown
