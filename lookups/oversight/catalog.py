"""The fixed vocabulary of the audit log: actions, outcomes and their export categories.

Admin filters offer these fixed lists instead of a ``SELECT DISTINCT`` over a table of
millions of rows. ``CATEGORY`` maps each action to the ASTM E2147 / ONC 170.315(d)(3)
type of event used in the CSV export.
"""

from __future__ import annotations

# action: (label, category)
ACTIONS: dict[str, tuple[str, str]] = {
    "lookup.started": ("Lookup started", "query"),
    "lookup.start_refused": ("Lookup refused at start", "query"),
    "otp.verified": ("One-time code accepted", "authentication"),
    "otp.failed": ("One-time code failed", "authentication"),
    "otp.throttled": ("One-time code throttled", "authentication"),
    "face.submitted": ("Face photo submitted", "authentication"),
    "face.upload_refused": ("Face photo refused", "authentication"),
    "face.verdict": ("Face check result", "authentication"),
    "face.not_queued": ("Face check not queued", "authentication"),
    "face.expired": ("Face check expired", "authentication"),
    "lookup.granted": ("Lookup granted", "query"),
    "lookup.denied": ("Lookup denied", "query"),
    "lookup.cancelled": ("Lookup cancelled", "query"),
    "lookup.expired": ("Lookup expired unfinished", "query"),
    "grant.expired": ("Results window ended", "query"),
    "results.viewed": ("Results shown", "read"),
    "person.registered": ("Person registered", "create"),
    "person.viewed": ("Person record viewed by staff", "read"),
    "result.recorded": ("Test result recorded", "create"),
    "result.viewed_by_staff": ("Test result viewed by staff", "read"),
    "account.created": ("Login account created", "create"),
    "staff.role_granted": ("Staff role granted", "update"),
    "otp_device.created": ("Authenticator added", "create"),
    "otp_device.confirmed": ("Authenticator confirmed", "update"),
    "otp_device.changed": ("Authenticator changed", "update"),
    "face.enrolled": ("Face enrolled", "create"),
    "authorization.created": ("Authorization registered", "create"),
    "authorization.approved": ("Authorization approved", "update"),
    "authorization.revoked": ("Authorization revoked", "update"),
    "authorization.suspended": ("Authorization suspended", "update"),
    "authorization.renewed": ("Authorization renewed", "update"),
    "login.succeeded": ("Sign-in succeeded", "login"),
    "login.failed": ("Sign-in failed", "login"),
    "admin.added": ("Admin: object added", "create"),
    "admin.changed": ("Admin: object changed", "update"),
    "admin.deleted": ("Admin: object deleted", "delete"),
    "audit.report_viewed": ("Audit report viewed", "read"),
    "audit.exported": ("Audit log exported", "copy"),
    "audit.chain_broken": ("Audit chain verification failed", "security"),
    "anomaly.flagged": ("Anomaly flagged", "security"),
    "anomaly.acknowledged": ("Anomaly acknowledged", "security"),
    "anomaly.resolved": ("Anomaly resolved", "security"),
    "notice.queued": ("Notice to elder queued", "notice"),
    "notice.sent": ("Notice to elder sent", "notice"),
    "notice.failed": ("Notice to elder failed", "notice"),
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

# What an elder's access report groups into one lookup row.
LOOKUP_ACTIONS = frozenset(
    {
        "lookup.started",
        "lookup.granted",
        "lookup.denied",
        "lookup.cancelled",
        "lookup.expired",
        "grant.expired",
        "results.viewed",
    }
)
LOOKUP_END_ACTIONS = ("lookup.granted", "lookup.denied", "lookup.cancelled", "lookup.expired")
STAFF_VIEW_ACTIONS = frozenset({"person.viewed", "result.viewed_by_staff", "audit.report_viewed"})
AUTHORIZATION_ACTIONS = frozenset(
    {
        "authorization.created",
        "authorization.approved",
        "authorization.revoked",
        "authorization.suspended",
        "authorization.renewed",
    }
)
NOTICE_ACTIONS = frozenset({"notice.sent", "notice.failed"})
ELDER_REPORT_ACTIONS = LOOKUP_ACTIONS | STAFF_VIEW_ACTIONS | AUTHORIZATION_ACTIONS | NOTICE_ACTIONS


def action_label(action: str) -> str:
    return ACTIONS.get(action, (action, ""))[0]


def action_category(action: str) -> str:
    return ACTIONS.get(action, ("", "other"))[1]


def action_choices() -> list[tuple[str, str]]:
    return sorted(((action, label) for action, (label, _) in ACTIONS.items()), key=lambda item: item[0])
