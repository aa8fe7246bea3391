"""Read an uploaded lab results file (CSV UTF-8/GB18030 or .xlsx) into rows. No ORM.

Returns a :class:`LabFile` with the rows (dicts keyed by the canonical column names) and every
per-line problem; the import itself stays all-or-nothing (the caller decides). Limits come in as
arguments so this module never imports ``lookups.services``.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

COLUMNS = ("id_number", "test_kind", "sampled_at", "site", "lab", "result", "reported_at")
# English and Chinese column titles (and the aliases the CSV import already accepts).
HEADER_ALIASES = {
    "kind": "test_kind",
    "id": "id_number",
    "id_no": "id_number",
    "身份证号": "id_number",
    "证件号码": "id_number",
    "检测类型": "test_kind",
    "采样时间": "sampled_at",
    "采样点": "site",
    "检测机构": "lab",
    "结果": "result",
    "检测结果": "result",
    "报告时间": "reported_at",
}
ZIP_MAGIC = b"PK\x03\x04"
MAX_ZIP_RATIO = 100


class LabFileRejected(Exception):
    """The whole file is refused; ``str()`` says why."""


@dataclass(frozen=True)
class LineProblem:
    line: int
    column: str
    message: str


@dataclass
class LabFile:
    format: str
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[LineProblem] = field(default_factory=list)


def header_key(name: object) -> str:
    key = re.sub(r"[\s\-]+", "_", str(name or "").strip().lower())
    return HEADER_ALIASES.get(key, key)


def decode_csv(data: bytes) -> str:
    """Strict UTF-8 (BOM optional), else GB18030; refuse with the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as first:
        utf8_error = first
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        # Name the line where the decoder that got further stopped (the file's likely encoding).
        line = data[: max(exc.start, utf8_error.start)].count(b"\n") + 1
        raise LabFileRejected(
            _("The file is neither UTF-8 nor GB18030 text (line %(line)d). Save it as CSV UTF-8 and try again.")
            % {"line": line}
        ) from exc


def _map_header(header: list) -> dict[str, int]:
    keys = [header_key(h) for h in header]
    missing = [c for c in COLUMNS if c not in keys]
    if missing:
        raise LabFileRejected(
            _("The first line must be the header; missing columns: %(missing)s") % {"missing": ", ".join(missing)}
        )
    return {k: i for i, k in enumerate(keys) if k in COLUMNS}


def _check_zip(data: bytes, max_bytes: int) -> None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise LabFileRejected(_("This .xlsx file is damaged.")) from exc
    with zf:
        total = 0
        for info in zf.infolist():
            total += info.file_size
            if info.file_size > max_bytes * MAX_ZIP_RATIO or (
                info.compress_size
                and info.file_size / info.compress_size > MAX_ZIP_RATIO
                and info.file_size > max_bytes
            ):
                raise LabFileRejected(_("This .xlsx file expands too much to be read safely."))
        if total > max_bytes * MAX_ZIP_RATIO:
            raise LabFileRejected(_("This .xlsx file expands too much to be read safely."))


def _cell_text(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    return str(value)


def _xlsx_lines(data: bytes, max_bytes: int):
    _check_zip(data, max_bytes)
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - dependency pinned in requirements.in
        raise LabFileRejected(_("Excel files cannot be read here; please upload CSV.")) from exc
    try:
        # data_only=True: formulas are never evaluated; a formula cell has its cached value or None.
        formulas = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False).worksheets[0]
        values = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
    except Exception as exc:  # openpyxl raises many types on junk input
        raise LabFileRejected(_("This .xlsx file could not be read.")) from exc
    for frow, vrow in zip(formulas.iter_rows(values_only=True), values.iter_rows(values_only=True), strict=False):
        cells, bad = [], []
        for i, (f, v) in enumerate(zip(frow, vrow, strict=False)):
            if isinstance(f, str) and f.startswith("="):
                bad.append(i)
                cells.append("")
            else:
                cells.append(_cell_text(v))
        yield cells, bad


def read_lab_file(data: bytes, *, max_bytes: int, max_rows: int) -> LabFile:
    if not data or not data.strip():
        raise LabFileRejected(_("The file is empty."))
    if len(data) > max_bytes:
        raise LabFileRejected(
            _("The file is larger than %(mb)d MB. Please split it into smaller files.")
            % {"mb": max_bytes // (1024 * 1024)}
        )
    if data.startswith(ZIP_MAGIC):
        result, lines = LabFile("xlsx"), _xlsx_lines(data, max_bytes)
    else:
        text = decode_csv(data)
        if "\x00" in text:
            raise LabFileRejected(_("This is not a CSV text file. Please export the results as CSV."))
        result = LabFile("csv")
        lines = ((cells, []) for cells in csv.reader(io.StringIO(text, newline="")))
    columns = None
    for line, (cells, bad) in enumerate(lines, start=1):
        if not any(c.strip() for c in cells):
            continue
        if columns is None:
            columns = _map_header(cells)
            names = {i: k for k, i in columns.items()}
            continue
        if len(result.rows) >= max_rows:
            raise LabFileRejected(_("The file has more than %(max)d result rows. Please split it.") % {"max": max_rows})
        for i in bad:
            result.problems.append(
                LineProblem(line, names.get(i, str(i + 1)), _("A formula is not accepted; enter the value itself."))
            )
        row = {k: (cells[i].strip() if i < len(cells) else "") for k, i in columns.items()}
        result.rows.append((line, row))
    if columns is None or not result.rows:
        raise LabFileRejected(_("The file has no result rows, only a header (or nothing)."))
    return result
