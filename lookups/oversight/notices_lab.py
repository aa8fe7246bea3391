"""Elder notices about laboratory changes: a result someone else had already seen was
corrected or withdrawn by the laboratory (queued by ``lookups.fhir.services.corrections``).

The rule is the one of every notice (``notices``): the elder hears about access to their data,
who and when, never the values or an ID number, in the elder's own language
(``notices.render_notice`` activates it before calling these). Only rendering lives here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from ..models import Notice

LAB_KINDS = frozenset({Notice.Kind.RESULT_CORRECTED, Notice.Kind.RESULT_WITHDRAWN})


def _when(context: dict[str, Any]) -> str:
    at = context.get("at")
    return timezone.localtime(dt.datetime.fromisoformat(at)).strftime("%Y-%m-%d %H:%M") if at else ""


def lab_notice_text(kind: str, context: dict[str, Any]) -> tuple[str, str]:
    """(line, subject) for a lab-change notice, in the active language."""
    values = {"lab": context.get("lab", ""), "viewers": context.get("viewers", ""), "when": _when(context)}
    if kind == Notice.Kind.RESULT_CORRECTED:
        line = _(
            "%(lab)s corrected one of your test results on %(when)s. %(viewers)s had already seen the "
            "earlier version; your results now show the corrected one."
        )
        return line % values, _("A laboratory corrected one of your test results")
    line = _(
        "%(lab)s withdrew one of your test results on %(when)s (entered in error). %(viewers)s had "
        "already seen it; it is no longer shown."
    )
    return line % values, _("A laboratory withdrew one of your test results")


def lab_sms_params(context: dict[str, Any]) -> dict[str, str]:
    """SMS template parameters: ``lab``, ``viewers``, ``time`` (plus ``clinic``, ``phone``)."""
    return {"lab": context.get("lab", ""), "viewers": context.get("viewers", ""), "time": _when(context)}
