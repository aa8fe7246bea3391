"""Results imported from a lab file (CSV UTF-8/GB18030 or .xlsx) in the staff workspace: all rows or none."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from guardians import permissions
from guardians.models import Clinic, Person

from .. import lab_files
from ..audit import Actor, AuditEntry, audit_record_many
from ..models import TestResult
from .common import _now

if TYPE_CHECKING:
    from collections.abc import Sequence


RESULTS_CSV_MAX_BYTES = 2 * 1024 * 1024
RESULTS_CSV_MAX_ROWS = 5000
RESULTS_CSV_COLUMNS = ("id_number", "test_kind", "sampled_at", "site", "lab", "result", "reported_at")
_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class ImportRowError:
    line: int
    message: str


class ResultsImportRejected(Exception):
    """Nothing was imported. ``str()`` says why; ``errors`` lists row problems by line number."""

    def __init__(self, message: str, errors: Sequence[ImportRowError] = ()):
        super().__init__(message)
        self.errors = list(errors)


@dataclass
class _ImportRow:
    line: int
    id_hash: str = ""
    kind: str = ""
    sampled_at: dt.datetime | None = None
    reported_at: dt.datetime | None = None
    site: str = ""
    lab: str = ""
    result: str = ""

    def checked_times(self) -> tuple[dt.datetime, dt.datetime]:
        """(sampled_at, reported_at) of a row that passed the checks (both are set then)."""
        if self.sampled_at is None or self.reported_at is None:
            raise ValueError(f"line {self.line} was written without its checks")
        return self.sampled_at, self.reported_at


def _csv_key(name: str) -> str:
    """The canonical column for a header title: English or Chinese titles, as the templates."""
    return lab_files.header_key(name)


def _csv_datetime(value: str) -> dt.datetime | None:
    """``2026-01-05 09:30``, ``2026-01-05T09:30:00+08:00`` or ``2026/01/05 09:30``; naive → TIME_ZONE."""
    from django.utils.dateparse import parse_datetime

    value = value.strip().replace("/", "-")
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def _csv_kind(value: str) -> str | None:
    wanted = value.strip().lower()
    for code, label in TestResult.Kind.choices:
        if wanted in (code, str(label).lower()):
            return code
    return None


def _csv_check_header(header: list[str]) -> dict[str, int]:
    keys = [_csv_key(name) for name in header]
    expected = ", ".join(RESULTS_CSV_COLUMNS)
    if len(keys) == 1 and any(sep in header[0] for sep in (";", "\t")):
        raise ResultsImportRejected(_("Columns must be separated by commas. Expected header: %s") % expected)
    missing = [c for c in RESULTS_CSV_COLUMNS if c not in keys]
    unknown = [h for h, k in zip(header, keys, strict=True) if k not in RESULTS_CSV_COLUMNS]
    repeated = sorted({k for k in keys if k in RESULTS_CSV_COLUMNS and keys.count(k) > 1})
    problems = []
    if missing:
        problems.append(_("missing columns: %s") % ", ".join(missing))
    if unknown:
        problems.append(_("unknown columns: %s") % ", ".join(unknown))
    if repeated:
        problems.append(_("repeated columns: %s") % ", ".join(repeated))
    if problems:
        raise ResultsImportRejected(
            _("The first line must be the header (%(problems)s). Expected header: %(expected)s")
            % {"problems": "; ".join(problems), "expected": expected}
        )
    return {key: index for index, key in enumerate(keys)}


def _csv_parse_row(line: int, cells: list[str], columns: dict[str, int], now: dt.datetime) -> tuple[_ImportRow, list]:
    from guardians import crypto, id_numbers

    row = _ImportRow(line=line)
    problems: list[str] = []
    value = {key: cells[index].strip() for key, index in columns.items()}
    try:
        number, _birth = id_numbers.validate(value["id_number"])
        row.id_hash = crypto.keyed_hash(number)
    except id_numbers.InvalidIdNumber as exc:
        problems.append(_("ID number: %s") % exc)
    row.kind = _csv_kind(value["test_kind"]) or ""
    if not row.kind:
        problems.append(
            _("unknown test kind %(kind)r (use one of: %(kinds)s)")
            % {"kind": value["test_kind"], "kinds": ", ".join(TestResult.Kind.values)}
        )
    for field in ("sampled_at", "reported_at"):
        parsed = _csv_datetime(value[field])
        if parsed is None:
            problems.append(
                _("%(field)s %(value)r is not a date and time like 2026-01-05 09:30")
                % {"field": field, "value": value[field]}
            )
        elif parsed > now + _CLOCK_SKEW:
            problems.append(_("%(field)s is in the future") % {"field": field})
        setattr(row, field, parsed)
    if row.sampled_at and row.reported_at and row.reported_at < row.sampled_at:
        problems.append(_("reported_at is before sampled_at"))
    for field in ("site", "lab", "result"):
        if not value[field]:
            problems.append(_("%s is empty") % field)
        elif len(value[field]) > 200:
            problems.append(_("%s is longer than 200 characters") % field)
        setattr(row, field, value[field])
    return row, problems


def results_import_csv(*, actor: Actor, clinic: Clinic, data: bytes) -> list[TestResult]:
    """Import a lab export (CSV, UTF-8, header + one result per line) for ``clinic``: all rows or none.

    Every row is validated first (ID number checksum, elder registered at *this* clinic —
    matched by the keyed hash of the ID number, never revealing other clinics' people —,
    known test kind, dates, required text, no repeat of a row or of a recorded result) and
    every problem is reported with its line number in ``ResultsImportRejected.errors``. Only
    a file without problems is written, in one transaction: the results with one bulk insert
    (the clinic check of ``result_record`` was done for the whole file above), then one
    ``result.recorded`` event per row and one ``results.imported`` event through
    ``audit_record_many`` (one head lock, one bulk insert).
    """
    rows, elders = results_import_check(actor=actor, clinic=clinic, data=data)
    return _results_import_write(actor=actor, clinic=clinic, rows=rows, elders=elders)


@dataclass
class CheckedImport:
    """What :func:`results_import_validate` found: every problem, nothing written."""

    format: str
    rows: list[_ImportRow]
    elders: dict[str, Person]
    errors: list[ImportRowError]
    data_rows: int


def results_import_check(*, actor: Actor, clinic: Clinic, data: bytes) -> tuple[list[_ImportRow], dict[str, Person]]:
    """Every check of :func:`results_import_csv`, nothing written: the valid rows and the
    clinic's elders by ID hash, or :class:`ResultsImportRejected` listing every problem."""
    checked = results_import_validate(actor=actor, clinic=clinic, data=data)
    if checked.errors:
        lines = len({e.line for e in checked.errors})
        raise ResultsImportRejected(
            _(
                "Nothing was imported: %(lines)d of %(rows)d rows have problems. "
                "Correct them and import the whole file again."
            )
            % {"lines": lines, "rows": checked.data_rows},
            checked.errors,
        )
    return checked.rows, checked.elders


def _read_rows(data: bytes, now: dt.datetime) -> tuple[str, list[_ImportRow], list[ImportRowError], int]:
    """Parse a CSV (UTF-8 with or without BOM, or GB18030) or .xlsx lab file into rows and
    per-line problems; a problem with the whole file raises :class:`ResultsImportRejected`."""
    errors: list[ImportRowError] = []
    rows: list[_ImportRow] = []
    columns: dict[str, int] | None = None
    data_rows = 0
    try:
        file_format, lines = lab_files.lab_file_lines(data, max_bytes=RESULTS_CSV_MAX_BYTES)
        for line, cells, formulas in lines:
            if not any(cell.strip() for cell in cells):
                continue
            if columns is None:
                columns = _csv_check_header(cells)
                names = {index: key for key, index in columns.items()}
                continue
            data_rows += 1
            if data_rows > RESULTS_CSV_MAX_ROWS:
                raise ResultsImportRejected(
                    _("The file has more than %(max)d rows. Please split it into smaller files.")
                    % {"max": RESULTS_CSV_MAX_ROWS}
                )
            if file_format == "xlsx" and len(cells) < len(columns):
                cells = cells + [""] * (len(columns) - len(cells))  # empty cells at a row's end
            if len(cells) != len(columns):
                errors.append(
                    ImportRowError(line, _("has %(n)d fields, expected %(m)d") % {"n": len(cells), "m": len(columns)})
                )
                continue
            errors.extend(
                ImportRowError(
                    line, _("%(column)s: a formula is not accepted; enter the value itself.") % {"column": names[i]}
                )
                for i in formulas
            )
            row, problems = _csv_parse_row(line, cells, columns, now)
            errors.extend(ImportRowError(line, problem) for problem in problems)
            rows.append(row)
    except lab_files.LabFileRejected as exc:
        raise ResultsImportRejected(str(exc)) from exc
    if columns is None or data_rows == 0:
        raise ResultsImportRejected(_("The file has no result rows, only a header (or nothing)."))
    return file_format, rows, errors, data_rows


def results_import_validate(*, actor: Actor, clinic: Clinic, data: bytes) -> CheckedImport:
    """Read and check a lab file for ``clinic`` as the import does, write nothing.

    Whole-file problems (encoding, size, row limit, header, a zip bomb) raise
    :class:`ResultsImportRejected`; per-line problems are returned in ``errors``, sorted by
    line. The preview and the import both call this: one rule for both.
    """
    if not permissions.staff_can(actor.user, permissions.StaffAction.RECORD_RESULTS, clinic):
        raise ResultsImportRejected(_("You may not record results for this clinic."))
    file_format, rows, errors, data_rows = _read_rows(data, _now())
    elders = {
        p.id_number_hash: p
        for p in Person.objects.filter(
            clinic=clinic, is_elder=True, id_number_hash__in={r.id_hash for r in rows if r.id_hash}
        ).select_related("clinic")
    }
    recorded = set(
        TestResult.objects.filter(
            elder__in=list(elders.values()), sampled_at__in={r.sampled_at for r in rows if r.sampled_at}
        ).values_list("elder_id", "kind", "sampled_at")
    )
    seen: dict[tuple, int] = {}
    for row in rows:
        if not row.id_hash:
            continue
        elder = elders.get(row.id_hash)
        if elder is None:
            errors.append(ImportRowError(row.line, _("no elder with this ID number is registered at this clinic")))
            continue
        if not (row.kind and row.sampled_at):
            continue
        key = (elder.pk, row.kind, row.sampled_at)
        if key in seen:
            errors.append(
                ImportRowError(row.line, _("repeats line %d (same person, test kind and sampling time)") % seen[key])
            )
        elif key in recorded:
            errors.append(
                ImportRowError(
                    row.line, _("this result is already recorded (same person, test kind and sampling time)")
                )
            )
        seen.setdefault(key, row.line)
    errors.sort(key=lambda e: e.line)
    return CheckedImport(file_format, rows, elders, errors, data_rows)


def _results_import_write(
    *, actor: Actor, clinic: Clinic, rows: list[_ImportRow], elders: dict[str, Person]
) -> list[TestResult]:
    with transaction.atomic():
        created = TestResult.objects.bulk_create(
            [
                TestResult(
                    clinic=clinic,
                    elder=elders[row.id_hash],
                    kind=row.kind,
                    sampled_at=row.checked_times()[0],
                    site=row.site,
                    lab=row.lab,
                    result=row.result,
                    reported_at=row.checked_times()[1],
                    recorded_by=actor.user,
                )
                for row in rows
            ],  # one INSERT on PostgreSQL (Django splits it only where the driver limits parameters)
        )
        # The same events result_record writes, one per row, then the summary: appended last,
        # in one batch, prepared before the global chain head is locked, so the lock covers only
        # the hashing, one COPY of the events and the commit (lookups.audit.audit_record_many).
        entries = [
            AuditEntry(
                action="result.recorded",
                outcome="ok",
                subject=record.elder,
                target=record,
                clinic=clinic,
                details={"kind": record.kind, "with_photo": False},
            )
            for record in created
        ]
        entries.append(
            AuditEntry(
                action="results.imported",
                outcome="ok",
                clinic=clinic,
                details={"rows": len(created), "results": [r.pk for r in created]},
            )
        )
        audit_record_many(actor, entries)
    return created
