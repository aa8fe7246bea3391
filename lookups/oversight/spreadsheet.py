"""The spreadsheet view of an export: what Excel opens safely (issue 13).

Invariants: the file starts with a UTF-8 byte-order mark (Excel otherwise decodes Chinese
names as the ANSI code page); any text cell that a spreadsheet would read as a formula or
control (first character ``= + - @``, tab or carriage return, OWASP "CSV Injection") is
prefixed with a single quote, so an attempted username or user agent such as
``=HYPERLINK(...)`` is shown, never run. Numbers are written as numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BOM = "\ufeff"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """One cell as it may go into a spreadsheet: risky text gets a leading quote."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def neutralise_row(row: Iterable[Any]) -> list[Any]:
    return [neutralise(value) for value in row]
