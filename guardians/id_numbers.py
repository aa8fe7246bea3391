"""Chinese resident identity numbers (GB 11643-1999): validation and masking."""

import datetime as dt
import re

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^\d{17}[\dX]$")


class InvalidIdNumber(ValueError):
    """The text is not a valid 18-character resident ID number; ``str()`` says why."""


def check_character(first17: str) -> str:
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


def normalize(raw: str) -> str:
    return re.sub(r"[\s-]", "", raw or "").upper()


def validate(raw: str, *, today: dt.date | None = None) -> tuple[str, dt.date]:
    """Return the normalized number and the birth date it encodes, or raise InvalidIdNumber."""
    number = normalize(raw)
    if not _SHAPE.match(number):
        raise InvalidIdNumber("An ID number has 18 characters: 17 digits and a final digit or X.")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError as exc:
        raise InvalidIdNumber("The birth date inside this ID number is not a real date.") from exc
    today = today or dt.date.today()  # noqa: DTZ011 - a calendar date, not a timestamp
    if birth > today or birth.year < 1880:
        raise InvalidIdNumber("The birth date inside this ID number is not plausible.")
    if check_character(number[:17]) != number[17]:
        raise InvalidIdNumber("This ID number's check digit is wrong; please re-read the document.")
    return number, birth


def mask(number: str) -> str:
    """``110101********1234``: region code and last four only."""
    return f"{number[:6]}{'*' * 8}{number[-4:]}"


def make_valid(first17: str) -> str:
    """Complete 17 digits with their check character (for demo data and tests)."""
    return first17 + check_character(first17)
