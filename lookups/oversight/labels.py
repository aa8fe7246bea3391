"""Translated labels for audit action codes: the one place pages turn a code into words.

``action_label(code)`` is the single switch point: it reads the label from the closed audit
vocabulary (``lookups.audit_vocabulary``, legacy names included). Labels are looked up in
the *active* language, so callers decide the language (the auditor's for the admin, the elder's for the printed report).
"""

from __future__ import annotations

from .. import audit_vocabulary
from . import catalog


def action_label(code: str) -> str:
    """The action's label in the active language; an unknown code is shown as itself.

    The vocabulary's labels carry the "audit action" context (``pgettext_lazy``), so
    makemessages extracts them with it; legacy names read as the member they map to."""
    return audit_vocabulary.label(code)


def outcome_label(code: str) -> str:
    """An outcome code's label in the active language; an unknown code is shown as itself."""
    label = dict(catalog.OUTCOMES).get(code)
    return str(label) if label is not None else code


def notice_kind_label(kind: str) -> str:
    """What a notice was about, in the active language (the model's translated choices)."""
    from ..models import Notice

    try:
        return str(Notice.Kind(kind).label)
    except ValueError:
        return kind
