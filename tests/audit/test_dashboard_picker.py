"""The dashboard for a person: period and clinic picker (limited to the user's clinics), the
chart data as an HTML table, colours without a red/green pair."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from lookups.audit import Actor, audit_record
from lookups.oversight import charts

pytestmark = pytest.mark.django_db
URL = "admin:lookups_auditevent_dashboard"


def cancel_event(person) -> None:
    audit_record(
        actor=Actor.system("test"), action="lookup.cancelled", outcome="cancelled", subject=person, clinic=person.clinic
    )


@pytest.fixture
def two_clinics(elder, other_clinic):
    from tests import factories

    other_staff = factories.make_staff(other_clinic)
    foreign = factories.make_person(other_staff, other_clinic, "Hillside Elder", elder=True)
    cancel_event(elder)
    cancel_event(foreign)
    cancel_event(foreign)
    return elder, foreign


def test_the_period_picker_sets_the_days_and_the_table_has_one_row_per_day(auditor_client, two_clinics):
    today = timezone.localdate()
    since = today - dt.timedelta(days=6)
    response = auditor_client.get(reverse(URL), {"since": since.isoformat(), "until": today.isoformat(), "clinic": ""})
    assert response.status_code == 200
    assert len(response.context["data"].days) == 7 and len(response.context["table_rows"]) == 7
    html = response.content.decode()
    assert 'id="kg-dashboard-table"' in html and "<caption>" in html
    assert response.context["data"].totals["lookups"] == 1  # only the auditor's clinic


def test_the_clinic_picker_offers_only_the_users_clinics_and_refuses_another(
    auditor_client, two_clinics, clinic, other_clinic
):
    response = auditor_client.get(reverse(URL))
    offered = dict(response.context["form"].fields["clinic"].choices)
    assert str(clinic.pk) in offered and str(other_clinic.pk) not in offered
    today = timezone.localdate().isoformat()
    forged = auditor_client.get(reverse(URL), {"since": today, "until": today, "clinic": str(other_clinic.pk)})
    assert forged.status_code == 200 and forged.context["form"].errors
    assert forged.context["data"].totals["lookups"] == 1  # fell back to the default, still scoped


def test_a_superuser_can_narrow_to_one_clinic(client, two_clinics, other_clinic, django_user_model):
    from tests.helpers import otp_login

    admin = django_user_model.objects.create_superuser("root", "root@example.org", "x")
    otp_login(client, admin)
    today = timezone.localdate().isoformat()
    response = client.get(reverse(URL), {"since": today, "until": today, "clinic": str(other_clinic.pk)})
    assert response.context["data"].totals["lookups"] == 2


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-13-01", "until": "2026-01-01"},
        {"since": "2026-02-01", "until": "2026-01-01"},
        {"since": "2000-01-01", "until": "2026-01-01"},
        {"since": "x", "until": "y", "clinic": "'; drop"},
    ],
)
def test_bad_pickers_never_give_a_500(auditor_client, params):
    response = auditor_client.get(reverse(URL), params)
    assert response.status_code == 200 and response.context["form"].errors
    assert len(response.context["data"].days) == 30


def test_the_palette_has_no_red_green_pair():
    assert charts.PALETTE[:3] == ["#0072B2", "#E69F00", "#009E73"]  # Okabe-Ito
    assert "#2e7d32" not in charts.PALETTE and "#c62828" not in charts.PALETTE
