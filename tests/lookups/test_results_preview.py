"""The results preview: what would be imported and every per-line problem, nothing written."""

import pytest
from django.template.loader import render_to_string
from django.utils import timezone, translation

from guardians import id_numbers
from guardians.models import Person
from lookups.audit import Actor
from lookups.models import AuditEvent, TestResult
from tests import factories

pytestmark = pytest.mark.django_db
HEADER = "id_number,test_kind,sampled_at,site,lab,result,reported_at\n"


def db_counts() -> tuple[int, int, int]:
    return TestResult.objects.count(), AuditEvent.objects.count(), Person.objects.count()


ELDER_ID = id_numbers.make_valid("11010119450101123")
STRANGER_ID = id_numbers.make_valid("11010119460202456")


def preview_lab_file(data, *, actor, clinic):
    from lookups.services import results_import_preview

    return results_import_preview(actor=actor, clinic=clinic, data=data)


def clinic_staff(clinic):
    return clinic.memberships.select_related("user").first().user


def person_with(monkeypatch, number, *args, **kwargs):
    monkeypatch.setattr(factories, "valid_id_number", lambda: number)
    return factories.make_person(*args, **kwargs)


@pytest.fixture
def setup(monkeypatch):
    clinic, other = factories.ClinicFactory(), factories.ClinicFactory()
    staff = factories.make_staff(clinic)
    other_staff = factories.make_staff(other)
    elder = person_with(monkeypatch, ELDER_ID, staff, clinic, "Zhang Xiuying", elder=True)
    stranger = person_with(monkeypatch, STRANGER_ID, other_staff, other, "Wang Fang", elder=True)
    return clinic, staff, elder, stranger


def line(number, kind="nucleic_acid", sampled="2026-01-05 09:30", result="Negative", reported="2026-01-05 18:00"):
    return f"{number},{kind},{sampled},Site 1,Central Lab,{result},{reported}\n"


def test_clean_file_lists_rows_and_writes_nothing(setup):
    clinic, staff, elder, _stranger = setup
    number = ELDER_ID
    data = (HEADER + line(number) + line(number, kind="antigen")).encode()
    before = db_counts()
    preview = preview_lab_file(data, actor=Actor.for_user(clinic_staff(clinic)), clinic=clinic)
    assert db_counts() == before
    assert preview.ok and preview.problems == []
    assert [(r.line, r.elder_name, r.kind) for r in preview.rows] == [
        (2, "Zhang Xiuying", "Nucleic acid (PCR)"),
        (3, "Zhang Xiuying", "Rapid antigen"),
    ]
    assert number not in preview.rows[0].id_number_masked  # masked, never the full number


def test_every_problem_listed_by_line_and_nothing_written(setup):
    clinic, staff, elder, stranger = setup
    number, foreign = ELDER_ID, STRANGER_ID
    factories.make_result(staff, elder, sampled_at=timezone.make_aware(timezone.datetime(2026, 1, 4, 9, 30)))
    data = (
        HEADER
        + line(number)  # 2: fine
        + line(number)  # 3: repeats line 2
        + line(foreign)  # 4: registered at another clinic
        + line("110101194501011230")  # 5: bad checksum
        + line(number, kind="xray", sampled="yesterday")  # 6: two problems
        + line(number, sampled="2026-01-04 09:30", reported="2026-01-04 18:00")  # 7: already recorded
        + line(number, kind="antigen", result="")  # 8: empty result
    ).encode()
    before = db_counts()
    preview = preview_lab_file(data, actor=Actor.for_user(clinic_staff(clinic)), clinic=clinic)
    assert db_counts() == before
    assert not preview.ok
    lines = [p.line for p in preview.problems]
    assert lines == sorted(lines)
    assert set(lines) == {3, 4, 5, 6, 7, 8}
    assert lines.count(6) >= 2
    messages = {p.line: p.message for p in preview.problems}
    assert "repeats line 2" in messages[3]
    assert "registered at this clinic" in messages[4]
    assert "already recorded" in messages[7]
    assert "result is empty" in messages[8]
    assert [r.line for r in preview.rows] == [2]
    assert preview.total_rows == 7 and preview.problem_lines == 6


def test_formula_cells_in_xlsx_are_problems(setup):
    import io

    import openpyxl

    clinic, _staff, elder, _stranger = setup
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(HEADER.strip().split(","))
    sheet.append([ELDER_ID, "nucleic_acid", "2026-01-05 09:30", "S", "L", "=1+1", "2026-01-05 18:00"])  # noqa: E501
    out = io.BytesIO()
    workbook.save(out)
    preview = preview_lab_file(out.getvalue(), actor=Actor.for_user(clinic_staff(clinic)), clinic=clinic)
    assert preview.format == "xlsx"
    assert any(p.line == 2 and p.message.startswith("result:") for p in preview.problems)
    assert preview.rows == []


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00garbage\x81", b"just,a,header\n", b"PK\x03\x04broken"])
def test_refused_file_is_a_message_not_an_error(setup, data):
    clinic = setup[0]
    before = db_counts()
    preview = preview_lab_file(data, actor=Actor.for_user(clinic_staff(clinic)), clinic=clinic)
    assert preview.rejected and not preview.ok and preview.rows == []
    assert db_counts() == before


def test_fragment_renders_in_both_languages(setup):
    clinic, _staff, elder, _stranger = setup
    data = (HEADER + line(ELDER_ID) + line("bad")).encode()
    preview = preview_lab_file(data, actor=Actor.for_user(clinic_staff(clinic)), clinic=clinic)
    english = render_to_string("staff/results_preview.html", {"preview": preview})
    assert "Problems by line" in english and "Rows without problems" in english
    with translation.override("zh-hans"):
        chinese = render_to_string(
            "staff/results_preview.html",
            {"preview": preview_lab_file(data, actor=Actor.for_user(clinic_staff(clinic)), clinic=clinic)},
        )
    assert "Problems by line" not in chinese and "Rows without problems" not in chinese
    assert "尚未导入" in chinese
