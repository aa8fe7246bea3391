"""Original-mode acknowledgements: ACK with MSA (AA / AE / AR) and one ERR per problem.

Built as text (not from the incoming message), so a NAK can be written even for a message
whose MSH could not be parsed. Everything copied or explained is escaped (``| ^ ~ \\ &``).
"""

from __future__ import annotations

import secrets

from django.utils import timezone

from .parsing import ERROR_TEXT, Header, Problem

APPLICATION = "KINGUARD"


def escape(text: str) -> str:
    out = str(text).replace("\\", "\\E\\")
    for char, code in (("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        out = out.replace(char, code)
    return " ".join(out.split())[:400]


def _hd(value: str) -> str:
    """An HD/field copied from the incoming MSH: keep its components, escape everything else."""
    return "^".join(escape(part) for part in value.split("^")[:3])


def build(header: Header, code: str, problems: list[Problem] | None = None, text: str = "") -> bytes:
    """The ACK message (segments joined by CR), UTF-8; ``code`` is AA, AE or AR."""
    now = timezone.localtime().strftime("%Y%m%d%H%M%S%z")
    control = "ACK" + secrets.token_hex(8).upper()
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            APPLICATION,
            _hd(header.receiving_facility) or APPLICATION,
            _hd(header.sending_app),
            _hd(header.sending_facility),
            now,
            "",
            f"ACK^{header.trigger}^ACK",
            control,
            "P",
            header.version,
            "",
            "",
            "",
            "",
            "",
            "UNICODE UTF-8",
        ]
    )
    problems = problems or []
    summary = text or (problems[0].text if problems else "")
    segments = [msh, "|".join(["MSA", code, escape(header.control_id), escape(summary)])]
    for p in problems[:20]:
        app = f"{escape(p.app_code)}^^KINGUARD" if p.app_code else ""
        segments.append(
            "|".join(
                [
                    "ERR",
                    "",
                    p.where.erl(),
                    f"{p.code}^{ERROR_TEXT.get(p.code, 'Error')}^HL70357",
                    "E",
                    app,
                    "",
                    "",
                    escape(p.text),
                ]
            )
        )
    return "\r".join(segments).encode("utf-8")
