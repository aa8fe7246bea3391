"""The preview of a lab results file, shaped for the page: the rows that would be imported and
every per-line problem. No ORM writes, no services: ``results_import_preview`` (in
``lookups.services``) runs the import's own checks and hands the result to
:func:`preview_from_checked`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

ROWS_SHOWN = 500


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
    def shown_rows(self) -> list[PreviewRow]:
        """The rows the page lists (a 5,000-row table is too long to read or render)."""
        return self.rows[:ROWS_SHOWN]

    @property
    def more_rows(self) -> int:
        return max(0, len(self.rows) - ROWS_SHOWN)

    @property
    def problem_lines(self) -> int:
        return len({p.line for p in self.problems})


def preview_from_checked(checked) -> Preview:
    """A :class:`Preview` of a ``results_import.CheckedImport``: the clean rows and every problem."""
    from .models import TestResult

    bad_lines = {e.line for e in checked.errors}
    return Preview(
        format=checked.format,
        total_rows=checked.data_rows,
        problems=[PreviewProblem(e.line, str(e.message)) for e in checked.errors],
        rows=[
            PreviewRow(
                line=row.line,
                elder_name=checked.elders[row.id_hash].full_name,
                id_number_masked=checked.elders[row.id_hash].id_number_masked,
                kind=str(TestResult.Kind(row.kind).label),
                sampled_at=row.sampled_at,
                reported_at=row.reported_at,
                site=row.site,
                lab=row.lab,
                result=row.result,
            )
            for row in checked.rows
            if row.line not in bad_lines and row.id_hash in checked.elders
        ],
    )
