"""The fixed vocabulary of the audit log: actions, outcomes and their export categories.

Admin filters offer these fixed lists instead of a ``SELECT DISTINCT`` over a table of
millions of rows. ``CATEGORY`` maps each action to the ASTM E2147 / ONC 170.315(d)(3)
type of event used in the CSV export.
"""

from __future__ import annotations

from lookups.audit_vocabulary import INFO, AuditAction, Report, stored_values
from lookups.audit_vocabulary import category as action_category
from lookups.audit_vocabulary import label as action_label

# Derived from the closed vocabulary (lookups/audit_vocabulary.py); do not add actions here.
ACTIONS: dict[str, tuple[str, str]] = {
    member.value: (str(member.label), INFO[member].category) for member in AuditAction
}

OUTCOMES: list[tuple[str, str]] = [
    ("ok", "OK"),
    ("granted", "Granted"),
    ("denied", "Denied"),
    ("shown", "Shown"),
    ("match", "Face match"),
    ("no_match", "Face no match"),
    ("rejected", "Photo not usable"),
    ("error", "Error"),
    ("wrong_code", "Wrong code"),
    ("replayed", "Code replayed"),
    ("throttled", "Throttled"),
    ("not_authorized", "Not authorized"),
    ("expired", "Expired"),
    ("cancelled", "Cancelled"),
    ("queued", "Queued"),
    ("sent", "Sent"),
    ("failed", "Failed"),
    ("pending", "Pending"),
    ("active", "Active"),
    ("revoked", "Revoked"),
    ("suspended", "Suspended"),
    ("invalid_login", "Invalid login"),
    ("invalid_token", "Invalid OTP token"),
    ("open", "Open"),
    ("acknowledged", "Acknowledged"),
    ("resolved", "Resolved"),
    ("awaiting_otp", "Awaiting OTP (lookup started)"),
    ("new", "New (enrollment)"),
    ("replaced", "Replaced (enrollment)"),
    ("confirmed", "Confirmed"),
    ("unconfirmed", "Unconfirmed"),
    ("no_device", "No OTP device"),
    ("broker_unavailable", "Broker unavailable"),
    ("will_retry", "Will retry"),
    ("no_contact", "No contact on file"),
    ("discarded", "Discarded"),
    # anomaly.flagged carries the rule as its outcome
    ("many_elders", "Anomaly: many elders"),
    ("otp_failures", "Anomaly: OTP failures"),
    ("face_failures", "Anomaly: face failures"),
    ("shared_ip", "Anomaly: shared IP"),
    ("unusual_hours", "Anomaly: unusual hours"),
    ("quick_use", "Anomaly: quick use"),
]

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
