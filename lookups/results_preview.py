"""Preview a lab results file before importing it: what would be imported, and every problem.

Read-only: it validates exactly as the import does (the import's own row validator), checks
each person is an elder registered at *this* clinic and that no row repeats another or a result
already recorded, and writes nothing (no rows, no audit event).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.translation import gettext as _

from .lab_files import COLUMNS, LabFileRejected, read_lab_file


@dataclass(frozen=True)
class PreviewRow:
    line: int
    elder_name: str
    id_number_masked: str
    kind: str
    sampled_at: dt.datetime | None
    reported_at: dt.datetime | None
    site: str
    lab: str
    result: str


@dataclass(frozen=True)
class PreviewProblem:
    line: int
    message: str


@dataclass
class Preview:
    format: str = ""
    rows: list[PreviewRow] = field(default_factory=list)  # the rows that would be imported
    problems: list[PreviewProblem] = field(default_factory=list)
    rejected: str = ""  # the whole file is refused (then rows and problems are empty)
    total_rows: int = 0

    @property
    def ok(self) -> bool:
        """True when importing this file would import every row (all-or-nothing)."""
        return not self.rejected and not self.problems and bool(self.rows)

    @property
    def problem_lines(self) -> int:
        return len({p.line for p in self.problems})


def preview_lab_file(data: bytes, *, clinic) -> Preview:
    # The import's own row validator (one rule for preview and import).
    from guardians.models import Person
    from lookups.models import TestResult
    from lookups.services import results_import as services

    try:
        lab_file = read_lab_file(data, max_bytes=services.RESULTS_CSV_MAX_BYTES, max_rows=services.RESULTS_CSV_MAX_ROWS)
    except LabFileRejected as exc:
        return Preview(rejected=str(exc))
    preview = Preview(format=lab_file.format, total_rows=len(lab_file.rows))
    problems = [PreviewProblem(p.line, f"{p.column}: {p.message}") for p in lab_file.problems]
    columns = {name: index for index, name in enumerate(COLUMNS)}
    now = timezone.now()
    parsed = []
    for line, values in lab_file.rows:
        row, row_problems = services._csv_parse_row(line, [values[c] for c in COLUMNS], columns, now)
        problems.extend(PreviewProblem(line, str(message)) for message in row_problems)
        parsed.append((row, values))
    elders = {
        p.id_number_hash: p
        for p in Person.objects.filter(
            clinic=clinic, is_elder=True, id_number_hash__in={r.id_hash for r, _v in parsed if r.id_hash}
        )
    }
    recorded = set(
        TestResult.objects.filter(
            elder__in=list(elders.values()), sampled_at__in={r.sampled_at for r, _v in parsed if r.sampled_at}
        ).values_list("elder_id", "kind", "sampled_at")
    )
    seen: dict[tuple, int] = {}
    candidates = []
    for row, _values in parsed:
        elder = elders.get(row.id_hash) if row.id_hash else None
        if row.id_hash and elder is None:
            problems.append(PreviewProblem(row.line, _("no elder with this ID number is registered at this clinic")))
        if elder is not None and row.kind and row.sampled_at:
            key = (elder.pk, row.kind, row.sampled_at)
            if key in seen:
                problems.append(
                    PreviewProblem(
                        row.line, _("repeats line %d (same person, test kind and sampling time)") % seen[key]
                    )
                )
            elif key in recorded:
                problems.append(
                    PreviewProblem(
                        row.line, _("this result is already recorded (same person, test kind and sampling time)")
                    )
                )
            seen.setdefault(key, row.line)
        if elder is not None:
            candidates.append((row, elder))
    bad_lines = {p.line for p in problems}
    preview.rows = [
        PreviewRow(
            line=row.line,
            elder_name=elder.full_name,
            id_number_masked=elder.id_number_masked,
            kind=str(TestResult.Kind(row.kind).label),
            sampled_at=row.sampled_at,
            reported_at=row.reported_at,
            site=row.site,
            lab=row.lab,
            result=row.result,
        )
        for row, elder in candidates
        if row.line not in bad_lines
    ]
    preview.problems = sorted(problems, key=lambda p: p.line)
    return preview
