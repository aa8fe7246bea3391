"""Downloadable lab results templates (CSV with a UTF-8 BOM, and .xlsx) in the user's language.

The column titles are exactly those :mod:`lookups.lab_files` accepts (English or Chinese), with
one example row, so a downloaded template re-reads with no problems. Staff who may record
results only, checked with ``guardians.permissions`` as the staff workspace does.
"""

from __future__ import annotations

import csv
import io
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import get_language
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from guardians import id_numbers, permissions

from .lab_files import COLUMNS

# Titles by language; each maps back to its column through lab_files.header_key.
TITLES = {
    "en": {
        "id_number": "ID number",
        "test_kind": "Test kind",
        "sampled_at": "Sampled at",
        "site": "Site",
        "lab": "Lab",
        "result": "Result",
        "reported_at": "Reported at",
    },
    "zh": {
        "id_number": "身份证号",
        "test_kind": "检测类型",
        "sampled_at": "采样时间",
        "site": "采样点",
        "lab": "检测机构",
        "result": "结果",
        "reported_at": "报告时间",
    },
}
# A made-up but checksum-valid ID number (born 1945-01-01), so the example row validates.
EXAMPLE_ID = id_numbers.make_valid("11010119450101123")
EXAMPLES = {
    "en": {
        "site": "Riverside Community Clinic",
        "lab": "City Testing Centre",
        "result": "Negative",
    },
    "zh": {
        "site": "河滨社区卫生服务中心",
        "lab": "市检测中心",
        "result": "阴性",
    },
}
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _language() -> str:
    return "zh" if (get_language() or "").lower().startswith("zh") else "en"


def template_rows(language: str | None = None) -> list[list[str]]:
    """The header and one example row, as text cells."""
    language = language or _language()
    example = {
        "id_number": EXAMPLE_ID,
        "test_kind": "nucleic_acid",
        "sampled_at": "2026-01-05 09:30",
        "reported_at": "2026-01-05 18:00",
        **EXAMPLES[language],
    }
    return [[TITLES[language][c] for c in COLUMNS], [example[c] for c in COLUMNS]]


def _results_staff_only(view):
    """OTP-verified staff with a clinic where their role may record results (as ``staff_view``)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not (user.is_authenticated and user.is_verified()):
            return redirect_to_login(request.get_full_path(), reverse("staff:login"))
        if not permissions.staff_clinics(user, permissions.StaffAction.RECORD_RESULTS).exists():
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return never_cache(wrapped)


def _attachment(content: bytes, content_type: str, extension: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    name = f"kinguard-results-template-{_language()}.{extension}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Content-Language"] = get_language() or "en"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
@_results_staff_only
def results_template_csv(request: HttpRequest) -> HttpResponse:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(template_rows())
    # The BOM makes Excel open the file as UTF-8 (Chinese titles stay readable).
    return _attachment(("\ufeff" + out.getvalue()).encode("utf-8"), "text/csv; charset=utf-8", "csv")


@require_GET
@_results_staff_only
def results_template_xlsx(request: HttpRequest) -> HttpResponse:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "results"
    for row in template_rows():
        sheet.append(row)
    for cell in sheet["A"]:
        cell.number_format = "@"  # text: an ID number must not become a number in Excel
    for column in "ABCDEFG":
        sheet.column_dimensions[column].width = 22
    out = io.BytesIO()
    workbook.save(out)
    return _attachment(out.getvalue(), XLSX_TYPE, "xlsx")
