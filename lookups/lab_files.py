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
import zlib
from collections.abc import Iterator
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
# A real 5,000-row workbook expands to a few MB; refuse more than this multiple of the upload limit.
MAX_XLSX_EXPANDED = 25
MAX_COLUMNS = 64


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
    """Refuse a workbook whose members expand beyond ``MAX_XLSX_EXPANDED`` × the upload limit
    in total, or one member that is both large and compressed more than ``MAX_ZIP_RATIO``:
    read from the central directory, before anything is decompressed."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise LabFileRejected(_("This .xlsx file is damaged.")) from exc
    with zf:
        total = 0
        for info in zf.infolist():
            total += info.file_size
            if info.file_size > max_bytes * MAX_XLSX_EXPANDED or (
                info.compress_size
                and info.file_size / info.compress_size > MAX_ZIP_RATIO
                and info.file_size > max_bytes
            ):
                raise LabFileRejected(_("This .xlsx file expands too much to be read safely."))
        if total > max_bytes * MAX_XLSX_EXPANDED:
            raise LabFileRejected(_("This .xlsx file expands too much to be read safely."))
        # The directory's sizes can lie. zipfile stops a member at its declared size and then
        # fails its CRC; decompressing every member once here (counting real bytes against the
        # same budget, at most ~50 MB of work) turns a forged archive into a clear refusal
        # before openpyxl parses anything.
        budget = max_bytes * MAX_XLSX_EXPANDED
        try:
            for info in zf.infolist():
                with zf.open(info) as member:
                    seen = 0
                    while chunk := member.read(1024 * 1024):
                        seen += len(chunk)
                        budget -= len(chunk)
                        if budget < 0 or seen > info.file_size:
                            raise LabFileRejected(_("This .xlsx file expands too much to be read safely."))
        except LabFileRejected:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise LabFileRejected(_("This .xlsx file is damaged.")) from exc


def _cell_text(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _xlsx_lines(data: bytes, max_bytes: int) -> Iterator[tuple[int, list[str], list[int]]]:
    _check_zip(data, max_bytes)
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - dependency pinned in requirements.in
        raise LabFileRejected(_("Excel files cannot be read here; please upload CSV.")) from exc
    try:
        # Two read-only passes: one sees formulas (to refuse them), one the cached values;
        # openpyxl never evaluates a formula. Only the first sheet, at most MAX_COLUMNS wide
        # (a forged sheet dimension cannot make every row 16,384 cells long).
        formulas = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=False).worksheets[0]
        values = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
        pairs = zip(
            formulas.iter_rows(max_col=MAX_COLUMNS, values_only=True),
            values.iter_rows(max_col=MAX_COLUMNS, values_only=True),
            strict=False,
        )
        for line, (frow, vrow) in enumerate(pairs, start=1):
            cells, bad = [], []
            for i, (f, v) in enumerate(zip(frow, vrow, strict=False)):
                if isinstance(f, str) and f.startswith("="):
                    bad.append(i)
                    cells.append("")
                else:
                    cells.append(_cell_text(v))
            while cells and not cells[-1].strip() and len(cells) - 1 not in bad:
                cells.pop()  # a sheet pads rows to its widest row: trailing blanks are not fields
            yield line, cells, bad
    except LabFileRejected:
        raise
    except Exception as exc:  # openpyxl raises many types on junk input  # noqa: BLE001
        raise LabFileRejected(_("This .xlsx file could not be read.")) from exc


def _csv_lines(data: bytes) -> Iterator[tuple[int, list[str], list[int]]]:
    text = decode_csv(data)
    if "\x00" in text:
        raise LabFileRejected(_("This is not a CSV text file. Please export the results as CSV."))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for cells in reader:
            yield reader.line_num, cells, []
    except csv.Error as exc:
        raise LabFileRejected(
            _("The file is not valid CSV near line %(line)d (%(error)s).") % {"line": reader.line_num, "error": exc}
        ) from exc


def lab_file_lines(data: bytes, *, max_bytes: int) -> tuple[str, Iterator[tuple[int, list[str], list[int]]]]:
    """The file's format (``csv``/``xlsx``) and its lines as ``(line number, cells, formula cell
    indexes)``; whole-file problems raise :class:`LabFileRejected` (some only while iterating)."""
    if not data or not data.strip():
        raise LabFileRejected(_("The file is empty."))
    if len(data) > max_bytes:
        raise LabFileRejected(
            _("The file is larger than %(mb)d MB. Please split it into smaller files.")
            % {"mb": max_bytes // (1024 * 1024)}
        )
    if data.startswith(ZIP_MAGIC):
        return "xlsx", _xlsx_lines(data, max_bytes)
    return "csv", _csv_lines(data)


def read_lab_file(data: bytes, *, max_bytes: int, max_rows: int) -> LabFile:
    fmt, lines = lab_file_lines(data, max_bytes=max_bytes)
    result = LabFile(fmt)
    columns = None
    for line, cells, bad in lines:
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
