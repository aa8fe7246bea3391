"""The fixed vocabulary of the audit log: actions, outcomes and their export categories.

Admin filters offer these fixed lists instead of a ``SELECT DISTINCT`` over a table of
millions of rows. ``CATEGORY`` maps each action to the ASTM E2147 / ONC 170.315(d)(3)
type of event used in the CSV export.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import pgettext_lazy

from lookups.audit_vocabulary import INFO, AuditAction, Report, stored_values
from lookups.audit_vocabulary import category as action_category
from lookups.audit_vocabulary import label as action_label

# Derived from the closed vocabulary (lookups/audit_vocabulary.py); do not add actions here.
ACTIONS: dict[str, tuple[str, str]] = {
    member.value: (str(member.label), INFO[member].category) for member in AuditAction
}

# Labels carry the "audit outcome" context, so makemessages extracts them as
# labels.outcome_label looks them up (and the dashboard series below).
OUTCOMES: list[tuple[str, Promise]] = [
    ("ok", pgettext_lazy("audit outcome", "OK")),
    ("granted", pgettext_lazy("audit outcome", "Granted")),
    ("denied", pgettext_lazy("audit outcome", "Denied")),
    ("shown", pgettext_lazy("audit outcome", "Shown")),
    ("match", pgettext_lazy("audit outcome", "Face match")),
    ("no_match", pgettext_lazy("audit outcome", "Face no match")),
    ("rejected", pgettext_lazy("audit outcome", "Photo not usable")),
    ("error", pgettext_lazy("audit outcome", "Error")),
    ("wrong_code", pgettext_lazy("audit outcome", "Wrong code")),
    ("replayed", pgettext_lazy("audit outcome", "Code replayed")),
    ("throttled", pgettext_lazy("audit outcome", "Throttled")),
    ("not_authorized", pgettext_lazy("audit outcome", "Not authorized")),
    ("expired", pgettext_lazy("audit outcome", "Expired")),
    ("cancelled", pgettext_lazy("audit outcome", "Cancelled")),
    ("queued", pgettext_lazy("audit outcome", "Queued")),
    ("sent", pgettext_lazy("audit outcome", "Sent")),
    ("failed", pgettext_lazy("audit outcome", "Failed")),
    ("pending", pgettext_lazy("audit outcome", "Pending")),
    ("active", pgettext_lazy("audit outcome", "Active")),
    ("revoked", pgettext_lazy("audit outcome", "Revoked")),
    ("suspended", pgettext_lazy("audit outcome", "Suspended")),
    ("invalid_login", pgettext_lazy("audit outcome", "Invalid login")),
    ("invalid_token", pgettext_lazy("audit outcome", "Invalid OTP token")),
    ("open", pgettext_lazy("audit outcome", "Open")),
    ("acknowledged", pgettext_lazy("audit outcome", "Acknowledged")),
    ("resolved", pgettext_lazy("audit outcome", "Resolved")),
    ("awaiting_otp", pgettext_lazy("audit outcome", "Awaiting OTP (lookup started)")),
    ("new", pgettext_lazy("audit outcome", "New (enrollment)")),
    ("replaced", pgettext_lazy("audit outcome", "Replaced (enrollment)")),
    ("confirmed", pgettext_lazy("audit outcome", "Confirmed")),
    ("unconfirmed", pgettext_lazy("audit outcome", "Unconfirmed")),
    ("no_device", pgettext_lazy("audit outcome", "No OTP device")),
    ("broker_unavailable", pgettext_lazy("audit outcome", "Broker unavailable")),
    ("will_retry", pgettext_lazy("audit outcome", "Will retry")),
    ("no_contact", pgettext_lazy("audit outcome", "No contact on file")),
    ("discarded", pgettext_lazy("audit outcome", "Discarded")),
    # anomaly.flagged carries the rule as its outcome
    ("many_elders", pgettext_lazy("audit outcome", "Anomaly: many elders")),
    ("otp_failures", pgettext_lazy("audit outcome", "Anomaly: OTP failures")),
    ("face_failures", pgettext_lazy("audit outcome", "Anomaly: face failures")),
    ("shared_ip", pgettext_lazy("audit outcome", "Anomaly: shared IP")),
    ("unusual_hours", pgettext_lazy("audit outcome", "Anomaly: unusual hours")),
    ("quick_use", pgettext_lazy("audit outcome", "Anomaly: quick use")),
]
# The dashboard's other series names (selectors.LOOKUP_OUTCOME_SERIES, translated in
# oversight/admin.py), marked here so makemessages keeps their "audit outcome" entries.
DASHBOARD_SERIES_LABELS = (
    pgettext_lazy("audit outcome", "Expired unfinished"),
    pgettext_lazy("audit outcome", "Refused at start"),
)

# What an elder's access report shows, section by section (derived from the vocabulary).
LOOKUP_ACTIONS = stored_values(Report.LOOKUP)
LOOKUP_END_ACTIONS = ("lookup.granted", "lookup.denied", "lookup.cancelled", "lookup.expired")
STAFF_VIEW_ACTIONS = stored_values(Report.STAFF_VIEW)
AUTHORIZATION_ACTIONS = stored_values(Report.AUTHORIZATION)
NOTICE_ACTIONS = stored_values(Report.NOTICE)
ELDER_REPORT_ACTIONS = stored_values(Report.ELDER)
SIGN_IN_ACTIONS = stored_values(Report.SIGN_IN)

__all__ = ["ACTIONS", "OUTCOMES", "action_category", "action_label", "action_choices"]


def action_choices() -> list[tuple[str, str]]:
    """The admin filter's choices: every member, by stored value."""
    return sorted(((member.value, str(member.label)) for member in AuditAction), key=lambda item: item[0])
