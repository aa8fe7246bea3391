"""Translated labels for audit action codes: the one place pages turn a code into words.

``action_label(code)`` is the single switch point: when the closed audit vocabulary (the
enum with label and category) lands, this function reads the label from it instead of
``catalog.ACTIONS``. Labels are looked up in the *active* language, so callers decide the
language (the auditor's for the admin, the elder's for the printed report).
"""

from __future__ import annotations

from django.utils.translation import pgettext

from . import catalog


def action_label(code: str) -> str:
    """The action's label in the active language; an unknown code is shown as itself."""
    label = catalog.ACTIONS.get(code, (None, ""))[0]
    return pgettext("audit action", label) if label else code


def outcome_label(code: str) -> str:
    """An outcome code's label in the active language; an unknown code is shown as itself."""
    label = dict(catalog.OUTCOMES).get(code)
    return pgettext("audit outcome", label) if label else code


def notice_kind_label(kind: str) -> str:
    """What a notice was about, in the active language (the model's translated choices)."""
    from ..models import Notice

    try:
        return str(Notice.Kind(kind).label)
    except ValueError:
        return kind
