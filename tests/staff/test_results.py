"""Recording results: the form, the all-or-nothing CSV import, and the staff-only sampling photo."""

import datetime as dt
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from lookups import services as lookup_services
from lookups.audit import Actor, verify_chain
from lookups.models import AuditEvent, TestResult
from lookups.services import results_import
from tests import factories
from tests.helpers import image_bytes, stored_id_number

pytestmark = pytest.mark.django_db
HEADER = "ID number,test kind,sampled at,site,lab,result,reported at"


def _png(color: str = "white") -> bytes:
    return image_bytes("PNG", (16, 16), color)


def _result_form(elder, **overrides):
    now = timezone.localtime().replace(second=0, microsecond=0)
    data = {
        "elder": str(elder.public_id),
        "kind": "antigen",
        "sampled_at": (now - dt.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M"),
        "site": "Riverside sampling point 3",
        "lab": "City Central Laboratory",
        "result": "Negative",
        "reported_at": (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
    }
    data.update(overrides)
    return data


def _new_url(elder):
    return reverse("staff:result_new") + f"?elder={elder.public_id}"


def test_record_a_result_with_a_private_sampling_photo(staff_client, staff, elder, settings):
    data = _result_form(elder, sampling_photo=SimpleUploadedFile("../../etc/evil name.png", _png(), "image/png"))
    response = staff_client.post(_new_url(elder), data)
    assert response.status_code == 302
    result = TestResult.objects.get(elder=elder)
    assert (result.kind, result.recorded_by, result.clinic) == ("antigen", staff, elder.clinic)
    name = result.sampling_photo.name
    assert name.startswith("sampling/") and "evil" not in name and name.endswith(".png")
    assert str(settings.PRIVATE_STORAGE_ROOT) in result.sampling_photo.path
    with pytest.raises(ValueError, match="no URL"):
        result.sampling_photo.url  # noqa: B018 - no public URL exists for it
    assert AuditEvent.objects.filter(action="result.recorded", details__with_photo=True).exists()


def test_result_form_errors_keep_the_input(staff_client, elder):
    data = _result_form(elder, result="", reported_at=_result_form(elder)["sampled_at"], sampled_at="2099-01-01T10:00")
    response = staff_client.post(_new_url(elder), data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "result" in errors and "sampled_at" in errors
    assert "Riverside sampling point 3" in response.content.decode()
    assert not TestResult.objects.exists()


def test_a_fake_photo_is_refused(staff_client, elder):
    data = _result_form(elder, sampling_photo=SimpleUploadedFile("x.png", b"<html>not an image", "image/png"))
    response = staff_client.post(_new_url(elder), data)
    assert response.status_code == 400 and "sampling_photo" in response.context["form"].errors


@pytest.fixture
def photo_result(staff, elder):
    return factories.make_result(staff, elder, sampling_photo=SimpleUploadedFile("p.png", _png("red"), "image/png"))


def test_photo_needs_a_typed_reason_and_is_audited(staff_client, staff, photo_result):
    url = reverse("staff:result_photo", args=[photo_result.pk])
    page = staff_client.get(url)
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert not AuditEvent.objects.filter(action="result.sampling_photo_viewed").exists()
    refused = staff_client.post(url, {"reason": "ok"})
    assert refused.status_code == 400
    shown = staff_client.post(url, {"reason": "Elder disputes the sample identity"})
    assert shown.status_code == 200 and shown["Content-Type"] == "image/png"
    assert b"".join(shown.streaming_content) == photo_result.sampling_photo.open("rb").read()
    assert "no-store" in shown["Cache-Control"] or "max-age=0" in shown["Cache-Control"]
    event = AuditEvent.objects.get(action="result.sampling_photo_viewed")
    assert event.actor == staff and event.details == {"reason": "Elder disputes the sample identity"}


def test_guardian_never_reaches_the_photo(guardian_client, photo_result, authorization):
    response = guardian_client.post(reverse("staff:result_photo", args=[photo_result.pk]), {"reason": "I am family"})
    assert response.status_code == 302 and response.url.startswith(reverse("staff:login"))
    assert not AuditEvent.objects.filter(action="result.sampling_photo_viewed").exists()


def test_result_without_photo_is_404(staff_client, staff, elder):
    result = factories.make_result(staff, elder)
    assert staff_client.get(reverse("staff:result_photo", args=[result.pk])).status_code == 404


# --- CSV import ---------------------------------------------------------------------------


def _csv(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def _row(person, kind="nucleic_acid", sampled="2026-01-05 09:30", result="Negative", reported="2026-01-06 08:00"):
    site, lab = "Riverside sampling point 3", "City Central Laboratory"
    return f"{stored_id_number(person)},{kind},{sampled},{site},{lab},{result},{reported}"


def _import(client, clinic, data: bytes, name="export.csv"):
    return client.post(
        reverse("staff:results_import"), {"clinic": clinic.pk, "file": SimpleUploadedFile(name, data, "text/csv")}
    )


@pytest.fixture
def elders(staff, clinic):
    return [factories.make_person(staff, clinic, f"Elder {i}", elder=True) for i in range(3)]


def _confirm_and_run(client, preview_response):
    """Confirm a preview as the page does (only the token goes back) and run the queued task."""
    from lookups.services import results_import_jobs

    queued = []
    with mock.patch("lookups.task_queue.publish_on_commit", side_effect=lambda _name, key: queued.append(key)):
        response = client.post(
            reverse("staff:results_import_confirm"), {"token": preview_response.context["confirm"]["token"].value()}
        )
    assert response.status_code == 302
    for key in queued:
        results_import_jobs.results_import_run(key=key)
    return response


def test_import_a_lab_export(staff_client, staff, clinic, elders):
    data = _csv(
        _row(elders[0]),
        _row(elders[1], kind="Rapid antigen", sampled="2026/01/05 10:00"),
        _row(elders[2], sampled="2026-01-05T11:00:00+08:00", reported="2026-01-05T20:00:00+08:00"),
    )
    # Intended change: the upload now shows a preview (nothing written); the confirm imports.
    preview = _import(staff_client, clinic, b"\xef\xbb\xbf" + data)  # with a BOM, as spreadsheets write it
    assert preview.status_code == 200 and preview.context["preview"].ok
    assert not TestResult.objects.exists()
    _confirm_and_run(staff_client, preview)
    results = {r.elder_id: r for r in TestResult.objects.all()}
    assert set(results) == {e.pk for e in elders}
    assert results[elders[1].pk].kind == "antigen"
    assert results[elders[0].pk].sampled_at == timezone.make_aware(dt.datetime(2026, 1, 5, 9, 30))
    assert results[elders[2].pk].sampled_at == dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.UTC)
    assert AuditEvent.objects.filter(action="result.recorded").count() == 3
    assert AuditEvent.objects.get(action="results.imported").details["rows"] == 3
    recorded = AuditEvent.objects.filter(action="result.recorded")
    assert {(e.subject_id, e.target_id, e.clinic_id) for e in recorded} == {
        (r.elder_id, str(r.pk), clinic.pk) for r in results.values()
    }
    assert verify_chain()[1] is None  # the import's batch chains on like single appends


def test_one_bad_row_imports_nothing_and_names_the_line(staff_client, clinic, elders):
    data = _csv(_row(elders[0]), _row(elders[1]), _row(elders[2], kind="urine"))
    response = _import(staff_client, clinic, data)
    assert response.status_code == 400
    assert not TestResult.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="result").exists()
    errors = response.context["errors"]
    assert [e.line for e in errors] == [4]
    assert "unknown test kind 'urine'" in errors[0].message
    page = response.content.decode()  # intended change: problems are listed in the preview's table
    assert "<td>4</td><td>unknown test kind" in page and "Nothing was imported" in page


def test_every_problem_is_listed_by_line(staff, clinic, elders, other_clinic):
    stranger = factories.make_person(factories.make_staff(other_clinic), other_clinic, "Elsewhere", elder=True)
    bad_checksum = stored_id_number(elders[0])[:17] + ("1" if stored_id_number(elders[0])[17] != "1" else "2")
    data = _csv(
        _row(elders[0]),
        _row(elders[0]).replace(stored_id_number(elders[0]), bad_checksum, 1),
        _row(elders[1], sampled="yesterday"),
        _row(elders[1], sampled="2026-01-06 09:00", reported="2026-01-05 09:00"),
        _row(stranger),
        _row(elders[0]),
        "only,three,fields",
        _row(elders[2], result=""),
    )
    with pytest.raises(lookup_services.ResultsImportRejected) as rejected:
        lookup_services.results_import_csv(actor=Actor.for_user(staff), clinic=clinic, data=data)
    by_line = {e.line: e.message for e in rejected.value.errors}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8, 9]
    assert "check digit" in by_line[3]
    assert "not a date and time" in by_line[4]
    assert "before sampled_at" in by_line[5]
    assert by_line[6] == "no elder with this ID number is registered at this clinic"  # nothing about elsewhere
    assert "repeats line 2" in by_line[7]
    assert "has 3 fields" in by_line[8]
    assert "result is empty" in by_line[9]
    assert not TestResult.objects.exists()


def test_reimporting_the_same_file_is_refused(staff, clinic, elders):
    data = _csv(_row(elders[0]))
    actor = Actor.for_user(staff)
    lookup_services.results_import_csv(actor=actor, clinic=clinic, data=data)
    with pytest.raises(lookup_services.ResultsImportRejected) as rejected:
        lookup_services.results_import_csv(actor=actor, clinic=clinic, data=data)
    assert "already recorded" in rejected.value.errors[0].message
    assert TestResult.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (HEADER.encode() + b"\n", "no result rows"),
        (b"ID number,test kind\n1,2\n", "missing columns: sampled_at, site, lab, result, reported_at"),
        ((HEADER + ",notes\n").encode(), "unknown columns: notes"),
        (HEADER.replace(",", ";").encode() + b"\n", "separated by commas"),
        # Intended change: GB18030 is now read (tests/staff/test_results_import.py); binary
        # junk that is neither UTF-8 nor GB18030, or decodes to control bytes, is still refused.
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "not a CSV text file"),
        (HEADER.encode() + b"\n\xff\xff\xff\n", "neither UTF-8 nor GB18030"),
        (b"a\x00b,c\n", "not a CSV text file"),
        (HEADER.encode() + b'\n"unterminated,quote\n', "not valid CSV"),
    ],
)
def test_bad_files_get_a_clear_message(staff_client, clinic, data, message):
    response = _import(staff_client, clinic, data)
    assert response.status_code == 400
    form_errors = " ".join(response.context["form"].errors.get("file", []))
    assert message in (response.context.get("rejected") or form_errors)
    assert not TestResult.objects.exists()


def test_huge_files_are_refused(staff_client, clinic, settings):
    data = HEADER.encode() + b"\n" + b"x" * (lookup_services.RESULTS_CSV_MAX_BYTES + 10)
    response = _import(staff_client, clinic, data)
    assert response.status_code == 400 and "larger than" in response.context["rejected"]


def test_too_many_rows_are_refused(staff, clinic, elders, monkeypatch):
    monkeypatch.setattr(results_import, "RESULTS_CSV_MAX_ROWS", 2)
    data = _csv(_row(elders[0]), _row(elders[1]), _row(elders[2]))
    with pytest.raises(lookup_services.ResultsImportRejected, match="more than 2 rows"):
        lookup_services.results_import_csv(actor=Actor.for_user(staff), clinic=clinic, data=data)


def test_auditor_cannot_import(auditor, clinic, elders):
    with pytest.raises(lookup_services.ResultsImportRejected):
        lookup_services.results_import_csv(actor=Actor.for_user(auditor), clinic=clinic, data=_csv(_row(elders[0])))
