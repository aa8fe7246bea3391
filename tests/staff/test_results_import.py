"""The desk's lab file import: both encodings, .xlsx, preview → confirm → task, tokens that lie."""

import io
import zipfile
from unittest import mock

import pytest
from django.core import signing
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation
from kombu.exceptions import OperationalError as BrokerUnavailable

from lookups.models import AuditEvent, TestResult
from lookups.services import results_import_jobs
from tests import factories
from tests.helpers import stored_id_number

from .conftest import verified_client

pytestmark = pytest.mark.django_db
EN = ["ID number", "Test kind", "Sampled at", "Site", "Lab", "Result", "Reported at"]
ZH = ["身份证号", "检测类型", "采样时间", "采样点", "检测机构", "结果", "报告时间"]


def _cells(person, sampled="2026-01-05 09:30", kind="nucleic_acid", result="阴性"):
    return [stored_id_number(person), kind, sampled, "河滨社区采样点", "市检测中心", result, "2026-01-06 08:00"]


def _csv(rows, header=ZH, encoding="utf-8") -> bytes:
    return "\n".join(",".join(r) for r in [header, *rows]).encode(encoding) + b"\n"


def _xlsx(rows, header=EN) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    for row in [header, *rows]:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _upload(client, clinic, data, name="results.csv"):
    return client.post(
        reverse("staff:results_import"),
        {"clinic": clinic.pk, "file": SimpleUploadedFile(name, data, "application/octet-stream")},
    )


def _token(response) -> str:
    return response.context["confirm"]["token"].value()


def _confirm(client, token):
    queued: list[str] = []
    with mock.patch("lookups.task_queue.publish_on_commit", side_effect=lambda _name, key: queued.append(key)):
        response = client.post(reverse("staff:results_import_confirm"), {"token": token})
    return response, queued


@pytest.fixture
def elders(staff, clinic):
    return [factories.make_person(staff, clinic, f"长者{i}", elder=True) for i in range(3)]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("utf8.csv", lambda rows: _csv(rows)),
        ("bom.csv", lambda rows: b"\xef\xbb\xbf" + _csv(rows, header=EN)),
        ("excel-zh.csv", lambda rows: _csv(rows, encoding="gb18030")),
        ("sheet.xlsx", lambda rows: _xlsx(rows)),
    ],
)
def test_preview_then_confirm_imports_every_row(staff_client, clinic, elders, name, make):
    data = make([_cells(e) for e in elders])
    preview = _upload(staff_client, clinic, data, name)
    assert preview.status_code == 200
    shown = preview.context["preview"]
    assert shown.ok and [r.line for r in shown.rows] == [2, 3, 4]
    assert {r.site for r in shown.rows} == {"河滨社区采样点"}  # decoded right in every encoding
    page = preview.content.decode()
    assert "长者0" in page and stored_id_number(elders[0]) not in page  # names shown, ID numbers masked
    assert not TestResult.objects.exists() and not AuditEvent.objects.filter(action__startswith="result").exists()

    response, queued = _confirm(staff_client, _token(preview))
    assert response.status_code == 302 and len(queued) == 1
    status_url = response.url
    waiting = staff_client.get(status_url)
    assert waiting.status_code == 200 and waiting["Refresh"] == "2" and "<progress" in waiting.content.decode()
    assert not TestResult.objects.exists()  # nothing until the worker runs

    assert results_import_jobs.results_import_run(key=queued[0]) == "done"
    assert TestResult.objects.filter(clinic=clinic).count() == 3
    assert {r.result for r in TestResult.objects.all()} == {"阴性"}
    done = staff_client.get(status_url)
    assert "Refresh" not in done and "Imported 3 results." in done.content.decode()
    assert AuditEvent.objects.get(action="results.imported").details["rows"] == 3


def test_preview_lists_every_problem_and_offers_no_confirm(staff_client, clinic, elders):
    data = _csv([_cells(elders[0]), _cells(elders[1], kind="xray"), _cells(elders[2], sampled="昨天")])
    response = _upload(staff_client, clinic, data)
    assert response.status_code == 400
    preview = response.context["preview"]
    assert [p.line for p in preview.problems] == [3, 4]
    assert "confirm" not in response.context
    page = response.content.decode()
    assert "unknown test kind" in page and "not a date and time" in page
    assert "Nothing was imported: 2 of 3 rows have problems" in page
    assert reverse("staff:results_import_confirm") not in page
    assert not TestResult.objects.exists()


def test_formula_cells_are_refused_not_evaluated(staff_client, clinic, elders):
    row = _cells(elders[0])
    row[5] = '=HYPERLINK("http://evil.example","阴性")'
    response = _upload(staff_client, clinic, _xlsx([row]), "f.xlsx")
    assert response.status_code == 400
    assert "result: a formula is not accepted" in response.content.decode()
    assert not TestResult.objects.exists()


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", b"<Types/>")
        zf.writestr("xl/worksheets/sheet1.xml", b" " * (60 * 1024 * 1024))
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe\xfa\xfb\n\x81\x30\n", "neither UTF-8 nor GB18030"),
        (b"PK\x03\x04not really a workbook", "damaged"),
        ("zip-bomb", "expands too much"),
        ("wide-header", "missing columns"),
    ],
)
def test_bad_files_get_a_message_never_a_500(staff_client, clinic, data, message):
    if data == "zip-bomb":
        data = _zip_bomb()
    elif data == "wide-header":
        data = _xlsx([["x"] * 10], header=["notes"] * 100)
    response = _upload(staff_client, clinic, data, "bad.xlsx")
    assert response.status_code == 400
    assert message in response.context["rejected"]
    assert not TestResult.objects.exists()


def test_too_many_rows_in_xlsx(staff_client, clinic, elders, monkeypatch):
    from lookups.services import results_import

    monkeypatch.setattr(results_import, "RESULTS_CSV_MAX_ROWS", 2)
    response = _upload(staff_client, clinic, _xlsx([_cells(e) for e in elders]), "big.xlsx")
    assert response.status_code == 400 and "more than 2 rows" in response.context["rejected"]


def test_a_forged_or_altered_token_is_refused(staff_client, staff, clinic, other_clinic, elders):
    preview = _upload(staff_client, clinic, _csv([_cells(elders[0])]))
    token = _token(preview)
    key = signing.loads(token, salt=results_import_jobs._SALT)["k"]
    forged = [
        token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),  # a bad signature
        signing.dumps({"k": key, "u": staff.pk, "c": other_clinic.pk, "h": "0"}, salt="wrong salt"),
        "",
    ]
    for bad in forged:
        response, queued = _confirm(staff_client, bad)
        assert response.status_code == 400 and queued == []
        assert "Upload the file again" in response.context["rejected"]
    assert not TestResult.objects.exists()


def test_another_clinics_staff_cannot_confirm_or_watch_a_preview(staff_client, other_staff, clinic, elders):
    preview = _upload(staff_client, clinic, _csv([_cells(elders[0])]))
    token = _token(preview)
    other = verified_client(other_staff)
    response, queued = _confirm(other, token)
    assert response.status_code == 400 and queued == [] and "not valid" in response.context["rejected"]
    mine, queued = _confirm(staff_client, token)
    assert other.get(mine.url).status_code == 404  # the status belongs to its uploader
    assert not TestResult.objects.exists()


def test_a_preview_is_refused_once_the_user_may_no_longer_record_there(staff_client, staff, clinic, elders):
    preview = _upload(staff_client, clinic, _csv([_cells(elders[0])]))
    staff.memberships.filter(clinic=clinic).update(role="auditor")
    response, queued = _confirm(verified_client(staff), _token(preview))
    assert response.status_code in (400, 403) and queued == []
    assert not TestResult.objects.exists()


def test_an_expired_preview_is_refused(staff_client, clinic, elders, monkeypatch):
    preview = _upload(staff_client, clinic, _csv([_cells(elders[0])]))
    monkeypatch.setattr(results_import_jobs, "STAGE_SECONDS", -1)
    response, queued = _confirm(staff_client, _token(preview))
    assert response.status_code == 400 and "expired" in response.context["rejected"] and queued == []


def test_a_double_confirm_starts_one_import(staff_client, clinic, elders):
    token = _token(_upload(staff_client, clinic, _csv([_cells(e) for e in elders])))
    first, queued_first = _confirm(staff_client, token)
    second, queued_second = _confirm(staff_client, token)
    assert first.url == second.url and len(queued_first) == 1 and queued_second == []
    results_import_jobs.results_import_run(key=queued_first[0])
    assert results_import_jobs.results_import_run(key=queued_first[0]) == "done"  # a redelivery: no-op
    assert TestResult.objects.count() == 3


def test_a_result_recorded_meanwhile_refuses_the_whole_import(staff_client, staff, clinic, elders):
    token = _token(_upload(staff_client, clinic, _csv([_cells(e) for e in elders])))
    response, queued = _confirm(staff_client, token)
    from django.utils.dateparse import parse_datetime
    from django.utils.timezone import make_aware

    factories.make_result(
        staff, elders[1], kind="nucleic_acid", sampled_at=make_aware(parse_datetime("2026-01-05 09:30"))
    )
    assert results_import_jobs.results_import_run(key=queued[0]) == "refused"
    assert TestResult.objects.count() == 1  # only the one recorded meanwhile: all or nothing
    page = staff_client.get(response.url).content.decode()
    assert "Line 3:" in page and "already recorded" in page


def test_the_worker_rereads_the_staged_file_not_the_browser(staff_client, clinic, elders, settings):
    token = _token(_upload(staff_client, clinic, _csv([_cells(elders[0])])))
    response, queued = _confirm(staff_client, token)
    staged = settings.PRIVATE_STORAGE_ROOT / "results-imports" / f"{queued[0]}.upload"
    staged.write_bytes(_csv([_cells(e) for e in elders]))  # changed on disk after the preview
    assert results_import_jobs.results_import_run(key=queued[0]) == "failed"
    assert not TestResult.objects.exists()
    assert "gone or changed" in staff_client.get(response.url).content.decode()


def test_broker_down_imports_nothing_and_the_preview_can_be_confirmed_again(staff_client, clinic, elders):
    token = _token(_upload(staff_client, clinic, _csv([_cells(elders[0])])))
    with mock.patch("lookups.task_queue.publish_on_commit", side_effect=BrokerUnavailable("down")):
        response = staff_client.post(reverse("staff:results_import_confirm"), {"token": token})
    assert response.status_code == 503 and "could not be started" in response.context["rejected"]
    again, queued = _confirm(staff_client, token)
    assert again.status_code == 302 and len(queued) == 1


def test_the_import_page_links_both_templates_and_speaks_chinese(staff_client, clinic):
    page = staff_client.get(reverse("staff:results_import")).content.decode()
    assert reverse("results_template_csv") in page and reverse("results_template_xlsx") in page
    with translation.override("zh-hans"):
        chinese = staff_client.get(reverse("staff:results_import"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "Download a template" not in chinese and "Check and preview" not in chinese


def test_status_of_an_unknown_key_is_404(staff_client):
    assert staff_client.get(reverse("staff:results_import_status", args=["f" * 32])).status_code == 404
    assert staff_client.get(reverse("staff:results_import_status", args=["not-a-key"])).status_code == 404


def test_the_celery_task_runs_the_import(staff_client, clinic, elders):
    from lookups.tasks import run_results_import

    token = _token(_upload(staff_client, clinic, _csv([_cells(e) for e in elders])))
    _response, queued = _confirm(staff_client, token)
    assert run_results_import.apply(args=queued).get() == "done"
    assert run_results_import.apply(args=queued).get() == "done"  # delivered again: nothing more
    assert TestResult.objects.count() == 3


def test_staged_files_are_swept_after_the_preview_window(staff_client, clinic, elders, settings):
    import os
    import time

    token = _token(_upload(staff_client, clinic, _csv([_cells(elders[0])])))
    folder = settings.PRIVATE_STORAGE_ROOT / "results-imports"
    (old,) = folder.glob("*.upload")
    stamp = time.time() - results_import_jobs.UPLOAD_KEEP_SECONDS - 1
    os.utime(old, (stamp, stamp))
    _upload(staff_client, clinic, _csv([_cells(elders[1])]))  # the next preview sweeps
    assert not old.exists() and old.with_suffix(".json").exists()
    _response, queued = _confirm(staff_client, token)
    assert results_import_jobs.results_import_run(key=queued[0]) == "failed"
    assert not TestResult.objects.exists()


def test_a_crash_in_the_import_is_shown_and_nothing_is_written(staff_client, clinic, elders):
    token = _token(_upload(staff_client, clinic, _csv([_cells(e) for e in elders])))
    response, queued = _confirm(staff_client, token)
    crash = mock.patch.object(results_import_jobs, "results_import_csv", side_effect=RuntimeError("db gone"))
    with crash, pytest.raises(RuntimeError):
        results_import_jobs.results_import_run(key=queued[0])
    page = staff_client.get(response.url)
    assert "Refresh" not in page and "The import failed. Nothing was imported" in page.content.decode()
    assert not TestResult.objects.exists()
