"""Audit views: scoped list with filters, per-elder report, guardian activity, CSV export,
dashboard; access by role; bounded query counts."""

import csv
import datetime as dt
import io
import zoneinfo

import pytest
import time_machine
from django.urls import reverse

from lookups import services
from lookups.audit import Actor, audit_record
from lookups.models import AuditEvent, LookupRequest
from tests import factories
from tests.helpers import otp_login

pytestmark = pytest.mark.django_db
LOCAL = zoneinfo.ZoneInfo("Asia/Shanghai")
LIST = "admin:lookups_auditevent_changelist"


def elder_report_url(person) -> str:
    return reverse("admin:lookups_auditevent_elder_report", args=[person.public_id])


@pytest.fixture
def looked_up(guardian, elder, authorization):
    """Two lookups of the elder by the guardian: one cancelled, one still waiting."""
    actor = Actor(user=guardian.user, label=guardian.user.username, ip="198.51.100.9", user_agent="phone")
    first = services.lookup_start(actor=actor, elder_public_id=elder.public_id)
    services.lookup_cancel(actor=actor, lookup_id=first.pk)
    services.lookup_start(actor=actor, elder_public_id=elder.public_id)
    return elder


@pytest.fixture
def foreign_events(staff, other_clinic):
    other_staff = factories.make_staff(other_clinic)
    return factories.make_person(other_staff, other_clinic, "Hillside Elder", elder=True)


def many_events(elder, n: int) -> None:
    actor = Actor.system("bulk")
    for i in range(n):
        audit_record(
            actor=actor, action="results.viewed", outcome="shown", subject=elder, clinic=elder.clinic, details={"i": i}
        )


def test_auditor_sees_only_their_clinics_events(auditor_client, looked_up, foreign_events):
    response = auditor_client.get(reverse(LIST))
    assert response.status_code == 200
    shown = {event.pk for event in response.context["cl"].result_list}
    mine = set(AuditEvent.objects.filter(clinic=looked_up.clinic).values_list("pk", flat=True))
    assert shown == mine and AuditEvent.objects.filter(clinic=foreign_events.clinic).exists()
    other = AuditEvent.objects.filter(clinic=foreign_events.clinic).first()
    assert auditor_client.get(reverse("admin:lookups_auditevent_change", args=[other.pk])).status_code == 302


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "lookup.cancelled"}, ["lookup.cancelled"]),
        ({"outcome": "cancelled"}, ["lookup.cancelled"]),
        ({"actor": "system:bulk"}, []),
    ],
)
def test_list_filters(auditor_client, looked_up, params, expected):
    response = auditor_client.get(reverse(LIST), params)
    assert response.status_code == 200
    assert [event.action for event in response.context["cl"].result_list] == expected


def test_actor_subject_and_period_filters(auditor_client, looked_up, guardian):
    response = auditor_client.get(reverse(LIST), {"actor": guardian.user.username, "subject": str(looked_up.public_id)})
    actions = [event.action for event in response.context["cl"].result_list]
    assert actions == ["lookup.started", "lookup.cancelled", "lookup.started"]
    today = dt.datetime.now(LOCAL).date()
    tomorrow = today + dt.timedelta(days=1)
    response = auditor_client.get(reverse(LIST), {"since": str(tomorrow)})
    assert list(response.context["cl"].result_list) == []
    response = auditor_client.get(reverse(LIST), {"since": str(today), "until": str(today)})
    assert len(response.context["cl"].result_list) == AuditEvent.objects.filter(clinic=looked_up.clinic).count()


@pytest.mark.parametrize("params", [{"since": "yesterday"}, {"subject": "not-a-uuid"}, {"clinic": "x"}, {"p": "99"}])
def test_bad_filter_input_never_fails(auditor_client, looked_up, params):
    response = auditor_client.get(reverse(LIST), params)
    assert response.status_code in (200, 302)


def test_list_query_count_is_bounded(auditor_client, looked_up, django_assert_max_num_queries):
    many_events(looked_up, 250)
    with django_assert_max_num_queries(12):
        response = auditor_client.get(reverse(LIST))
    assert len(response.context["cl"].result_list) == 100
    with django_assert_max_num_queries(13):
        response = auditor_client.get(reverse(LIST), {"action": "results.viewed", "subject": str(looked_up.public_id)})
    assert len(response.context["cl"].result_list) == 100


def test_elder_report_says_who_when_and_outcome(auditor_client, auditor, looked_up, guardian, superuser, client):
    response = auditor_client.get(elder_report_url(looked_up))
    assert response.status_code == 200
    report = response.context["report"]
    assert [(row.who, row.outcome) for row in report.lookups] == [
        (guardian.full_name, "in progress"),
        (guardian.full_name, "cancelled"),
    ]
    assert report.lookups[0].relationship == "Son or daughter"
    page = response.content.decode()
    assert guardian.full_name in page and "@media print" not in page  # print rules live in the CSS file
    assert "oversight.css" in page and "<script" not in page
    viewed = AuditEvent.objects.get(action="audit.report_viewed")
    assert viewed.actor_id == auditor.pk and viewed.subject_id == looked_up.pk
    # the report shows staff views too (this one included, on the next rendering)
    assert auditor_client.get(elder_report_url(looked_up)).context["report"].staff_views


def test_elder_report_query_count_is_bounded(auditor_client, looked_up, django_assert_max_num_queries):
    many_events(looked_up, 300)
    # session, user, OTP device, clinics, person, events, relationships, chain head + 5 to audit the view
    with django_assert_max_num_queries(13):
        assert auditor_client.get(elder_report_url(looked_up)).status_code == 200


def test_reports_refused_to_other_clinics_and_to_plain_staff(client, other_auditor, staff, looked_up, guardian):
    otp_login(client, other_auditor)
    assert client.get(elder_report_url(looked_up)).status_code == 404
    url = reverse("admin:lookups_auditevent_guardian_activity", args=[guardian.public_id])
    assert client.get(url).status_code == 404
    client.logout()
    otp_login(client, staff)  # front-desk staff: no audit role
    assert client.get(elder_report_url(looked_up)).status_code == 403
    assert client.get(reverse(LIST)).status_code == 403
    assert client.get(reverse("admin:lookups_auditevent_export")).status_code == 403
    assert client.get(reverse("admin:lookups_auditevent_dashboard")).status_code == 403
    assert not AuditEvent.objects.filter(action="audit.report_viewed").exists()


def test_guardian_activity(auditor_client, looked_up, guardian):
    url = reverse("admin:lookups_auditevent_guardian_activity", args=[guardian.public_id])
    response = auditor_client.get(url)
    assert response.status_code == 200
    activity = response.context["activity"]
    assert activity.counts == {"lookup.cancelled": 1, "lookup.started": 2}
    assert [a.elder for a in activity.authorizations] == [looked_up]


def _events_on(day: dt.date, elder, n: int) -> list[int]:
    with time_machine.travel(dt.datetime.combine(day, dt.time(12, 0), tzinfo=LOCAL), tick=False):
        return [
            audit_record(actor=Actor.system("t"), action="lookup.started", subject=elder, clinic=elder.clinic).sequence
            for _ in range(n)
        ]


def test_csv_export_contains_exactly_the_periods_events(client, superuser, elder, foreign_events):
    day = dt.date(2026, 5, 10)
    _events_on(day - dt.timedelta(days=1), elder, 2)
    inside = _events_on(day, elder, 3) + _events_on(day + dt.timedelta(days=1), foreign_events, 2)
    with time_machine.travel(dt.datetime(2026, 5, 11, 23, 59, 59, tzinfo=LOCAL), tick=False):
        inside += [audit_record(actor=Actor.system("t"), action="lookup.started").sequence]
    _events_on(day + dt.timedelta(days=2), elder, 2)
    otp_login(client, superuser)
    response = client.get(reverse("admin:lookups_auditevent_export"), {"since": "2026-05-10", "until": "2026-05-11"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["event_sequence", "event_time_utc", "user_id"] and "event_hash" in header
    assert [int(row[0]) for row in body] == inside
    assert body[0][header.index("action_type")] == "query" and body[0][header.index("user_type")] == "system"
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.details["since"] == "2026-05-10" and exported.actor_id == superuser.pk


def test_csv_export_of_an_auditor_is_limited_to_their_clinics(auditor_client, elder, foreign_events):
    day = dt.date(2026, 5, 10)
    mine = _events_on(day, elder, 2)
    _events_on(day, foreign_events, 2)
    response = auditor_client.get(reverse("admin:lookups_auditevent_export"), {"since": str(day), "until": str(day)})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))[1:]
    assert [int(row[0]) for row in rows] == mine


@pytest.mark.parametrize("params", [{"since": "2026-05-10", "until": "2026-05-01"}, {"since": "soon", "until": ""}])
def test_bad_export_period_gets_a_clear_answer(auditor_client, params):
    response = auditor_client.get(reverse("admin:lookups_auditevent_export"), params)
    assert response.status_code == 400 and not response.streaming
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_dashboard_draws_svg_charts_without_scripts(auditor_client, looked_up, guardian):
    LookupRequest.objects.filter(elder=looked_up).update(state=LookupRequest.State.CANCELLED)
    response = auditor_client.get(reverse("admin:lookups_auditevent_dashboard"))
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('class="kg-chart"') == 2 and "Cancelled" in page
    ours = page.split('<div id="content-main" class="kg-dashboard">', 1)[1].split("</main>", 1)[0]
    assert "<svg" in ours and "<script" not in ours
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    data = response.context["data"]
    assert sum(data.lookups_by_outcome["Cancelled"]) == 1 and data.totals["lookups"] == 1


def test_csv_export_opens_safely_in_a_spreadsheet(client, superuser, elder):
    """BOM for Excel, labels beside codes, and planted formulas neutralised (OWASP)."""
    planted = '=HYPERLINK("http://evil.example","x")'
    with time_machine.travel(dt.datetime(2026, 5, 10, 12, tzinfo=LOCAL), tick=False):
        audit_record(
            actor=Actor(user=None, label="anonymous", ip="203.0.113.5", user_agent=planted),
            action="login.failed",
            outcome="invalid_login",
            details={"username": "@SUM(1+1)"},
        )
        audit_record(actor=Actor(user=None, label="-2+3", user_agent="\tcmd"), action="login.failed")
    otp_login(client, superuser)
    response = client.get(reverse("admin:lookups_auditevent_export"), {"since": "2026-05-10", "until": "2026-05-10"})
    raw = b"".join(response.streaming_content)
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    first, second = body[0], body[1]
    assert first[header.index("user_agent")] == "'" + planted
    assert first[header.index("action_label")] == "Sign-in failed" and first[header.index("action")] == "login.failed"
    assert second[header.index("user_id")] == "'-2+3" and second[header.index("user_agent")] == "'\tcmd"
    for row in body:
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row), row
