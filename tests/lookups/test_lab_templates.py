"""Downloadable results templates: both languages, staff only, and they re-read cleanly."""

import pytest
from django.urls import reverse

from lookups import lab_templates
from lookups.lab_files import COLUMNS, read_lab_file
from tests import factories
from tests.helpers import verified_client

LIMITS = {"max_bytes": 2 * 1024 * 1024, "max_rows": 5000}
pytestmark = pytest.mark.django_db
NAMES = ("results_template_csv", "results_template_xlsx")


@pytest.fixture
def desk_client():
    clinic = factories.ClinicFactory()
    return verified_client(factories.make_staff(clinic))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    ("accept", "first_title", "site"),
    [
        ("en-US,en;q=0.9", "ID number", "Riverside Community Clinic"),
        ("zh-CN,zh;q=0.9", "身份证号", "河滨社区卫生服务中心"),
    ],
)
def test_template_in_the_users_language_rereads_with_no_problems(desk_client, name, accept, first_title, site):
    response = desk_client.get(reverse(name), HTTP_ACCEPT_LANGUAGE=accept)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    data = response.content
    parsed = read_lab_file(data, **LIMITS)
    assert parsed.problems == []
    assert parsed.format == ("csv" if name.endswith("csv") else "xlsx")
    assert len(parsed.rows) == 1
    line, row = parsed.rows[0]
    assert line == 2
    assert set(row) == set(COLUMNS)
    assert row["site"] == site
    assert row["id_number"] == lab_templates.EXAMPLE_ID  # text, not a number (no lost digits)
    if name.endswith("csv"):
        assert data.startswith("\ufeff".encode())
        assert data.decode("utf-8-sig").splitlines()[0].startswith(first_title)
    else:
        import io

        import openpyxl

        sheet = openpyxl.load_workbook(io.BytesIO(data)).active
        assert sheet["A1"].value == first_title


def test_template_follows_the_activated_language(desk_client):
    """The language chosen on the site (cookie, as the language switcher sets it) wins."""
    desk_client.cookies["django_language"] = "zh-hans"
    data = desk_client.get(reverse("results_template_csv")).content
    assert data.decode("utf-8-sig").splitlines()[0].split(",")[:2] == ["身份证号", "检测类型"]


def test_example_row_passes_the_import_row_validator():
    from django.utils import timezone

    from lookups.services import results_import

    for language in ("en", "zh"):
        header, example = lab_templates.template_rows(language)
        columns = {c: i for i, c in enumerate(COLUMNS)}
        _row, problems = results_import._csv_parse_row(2, example, columns, timezone.now())
        assert problems == [], (language, problems)


@pytest.mark.parametrize("name", NAMES)
def test_anonymous_is_sent_to_the_staff_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("staff:login"))
    assert b"ID number" not in response.content


@pytest.mark.parametrize("name", NAMES)
def test_signed_in_without_otp_or_as_auditor_or_guardian_is_refused(client, name):
    clinic = factories.ClinicFactory()
    staff = factories.make_staff(clinic)
    client.force_login(staff)  # password only, no OTP step
    assert client.get(reverse(name)).status_code == 302
    auditor = verified_client(factories.make_staff(clinic, role="auditor"))
    assert auditor.get(reverse(name)).status_code == 403
    guardian = factories.make_person(staff, clinic, "Li Wei", guardian=True, login=True)
    assert verified_client(guardian.user).get(reverse(name)).status_code == 403


def test_post_is_not_allowed(desk_client):
    assert desk_client.post(reverse("results_template_csv")).status_code == 405
