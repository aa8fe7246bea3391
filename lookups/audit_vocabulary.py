"""The closed vocabulary of the audit log (issue 12): every action the code may write.

One enumeration, :class:`AuditAction`, holds each action's stored string (unchanged, so no
data migration), its translatable label, its ASTM E2147 / ONC 170.315(d)(3) category and the
reports that include it. The admin filter, the per-elder report, the export and the catalog
all derive from it, so a new action appears everywhere at once or nowhere.

Invariant: :func:`lookups.audit.audit_record` refuses an action that is not a member, in every
environment (tests, DEBUG and production alike): a mistyped action is a programming error,
and failing the whole transaction is safer than writing an event no report can find.

Old rows stay readable: :data:`LEGACY_ACTIONS` maps names the code wrote before the
vocabulary closed (``staff.signed_in``) to the member that now records the same fact; they
are labelled and reported as that member but can no longer be written.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from django.db import models
from django.utils.translation import pgettext_lazy


class Report(enum.StrEnum):
    """The reports an action can belong to."""

    ELDER = "elder"  # the per-elder access report: everything done to or about the elder
    STAFF_VIEW = "staff_view"  # the elder report's "staff who looked at this record" section
    LOOKUP = "lookup"  # the elder report's lookup rows
    AUTHORIZATION = "authorization"  # the elder report's authorization changes
    NOTICE = "notice"  # the elder report's notices
    SIGN_IN = "sign_in"  # sign-in attempts (dashboard, anomaly rules)
    EXPORT = "export"  # the auditor's export (every action)


class AuditAction(models.TextChoices):
    LOOKUP_STARTED = "lookup.started", pgettext_lazy("audit action", "Lookup started")
    LOOKUP_START_REFUSED = "lookup.start_refused", pgettext_lazy("audit action", "Lookup refused at start")
    OTP_VERIFIED = "otp.verified", pgettext_lazy("audit action", "One-time code accepted")
    OTP_FAILED = "otp.failed", pgettext_lazy("audit action", "One-time code failed")
    OTP_THROTTLED = "otp.throttled", pgettext_lazy("audit action", "One-time code throttled")
    FACE_SUBMITTED = "face.submitted", pgettext_lazy("audit action", "Face photo submitted")
    FACE_UPLOAD_REFUSED = "face.upload_refused", pgettext_lazy("audit action", "Face photo refused")
    FACE_VERDICT = "face.verdict", pgettext_lazy("audit action", "Face check result")
    FACE_NOT_QUEUED = "face.not_queued", pgettext_lazy("audit action", "Face check not queued")
    FACE_EXPIRED = "face.expired", pgettext_lazy("audit action", "Face check expired")
    FACE_CHALLENGE_ISSUED = "face.challenge_issued", pgettext_lazy("audit action", "Liveness prompt issued")
    FACE_CHALLENGE_REFUSED = "face.challenge_refused", pgettext_lazy("audit action", "Liveness prompt refused")
    LOOKUP_GRANTED = "lookup.granted", pgettext_lazy("audit action", "Lookup granted")
    LOOKUP_DENIED = "lookup.denied", pgettext_lazy("audit action", "Lookup denied")
    LOOKUP_CANCELLED = "lookup.cancelled", pgettext_lazy("audit action", "Lookup cancelled")
    LOOKUP_EXPIRED = "lookup.expired", pgettext_lazy("audit action", "Lookup expired unfinished")
    GRANT_EXPIRED = "grant.expired", pgettext_lazy("audit action", "Results window ended")
    RESULTS_VIEWED = "results.viewed", pgettext_lazy("audit action", "Results shown")
    PERSON_REGISTERED = "person.registered", pgettext_lazy("audit action", "Person registered")
    PERSON_VIEWED = "person.viewed", pgettext_lazy("audit action", "Person record viewed by staff")
    IDENTITY_CHECKED = "identity.checked", pgettext_lazy("audit action", "Identity document checked")
    PREFERENCES_CHANGED = "preferences.changed", pgettext_lazy("audit action", "Preferences changed")
    RESULT_RECORDED = "result.recorded", pgettext_lazy("audit action", "Test result recorded")
    RESULTS_IMPORTED = "results.imported", pgettext_lazy("audit action", "Test results imported")
    RESULTS_IMPORT_ABANDONED = (
        "results.import_abandoned",
        pgettext_lazy("audit action", "Test results import given up (staged file deleted)"),
    )
    RESULT_VIEWED_BY_STAFF = "result.viewed_by_staff", pgettext_lazy("audit action", "Test result viewed by staff")
    RESULT_SAMPLING_PHOTO_VIEWED = (
        "result.sampling_photo_viewed",
        pgettext_lazy("audit action", "Sampling photo viewed by staff"),
    )
    ACCOUNT_CREATED = "account.created", pgettext_lazy("audit action", "Login account created")
    ACCOUNT_SET_PASSWORD_LINK_ISSUED = (
        "account.set_password_link_issued",
        pgettext_lazy("audit action", "Set-password link issued"),
    )
    ACCOUNT_PASSWORD_SET = "account.password_set", pgettext_lazy("audit action", "Password set")
    CLINIC_CREATED = "clinic.created", pgettext_lazy("audit action", "Clinic created")
    STAFF_ROLE_GRANTED = "staff.role_granted", pgettext_lazy("audit action", "Staff role granted")
    STAFF_REVERIFIED = "staff.reverified", pgettext_lazy("audit action", "Staff re-verified with a one-time code")
    STAFF_REVERIFY_FAILED = "staff.reverify_failed", pgettext_lazy("audit action", "Staff re-verification failed")
    OTP_DEVICE_CREATED = "otp_device.created", pgettext_lazy("audit action", "Authenticator added")
    OTP_DEVICE_CONFIRMED = "otp_device.confirmed", pgettext_lazy("audit action", "Authenticator confirmed")
    OTP_DEVICE_CHANGED = "otp_device.changed", pgettext_lazy("audit action", "Authenticator changed")
    OTP_DEVICE_REPLACED = "otp_device.replaced", pgettext_lazy("audit action", "Authenticator replaced")
    OTP_BACKUP_CODES_ISSUED = "otp_backup_codes.issued", pgettext_lazy("audit action", "Backup codes issued")
    FACE_CONSENT_RECORDED = "face.consent_recorded", pgettext_lazy("audit action", "Biometric consent recorded")
    FACE_CONSENT_WITHDRAWN = "face.consent_withdrawn", pgettext_lazy("audit action", "Biometric consent withdrawn")
    FACE_ENROLLED = "face.enrolled", pgettext_lazy("audit action", "Face enrolled")
    FACE_TEMPLATE_DELETED = "face.template_deleted", pgettext_lazy("audit action", "Face template deleted")
    AUTHORIZATION_CREATED = "authorization.created", pgettext_lazy("audit action", "Authorization registered")
    AUTHORIZATION_APPROVED = "authorization.approved", pgettext_lazy("audit action", "Authorization approved")
    AUTHORIZATION_REVOKED = "authorization.revoked", pgettext_lazy("audit action", "Authorization revoked")
    AUTHORIZATION_SUSPENDED = "authorization.suspended", pgettext_lazy("audit action", "Authorization suspended")
    AUTHORIZATION_RENEWED = "authorization.renewed", pgettext_lazy("audit action", "Authorization renewed")
    AUTHORIZATION_REMOVAL_REQUESTED = (
        "authorization.removal_requested",
        pgettext_lazy("audit action", "Removal of an authorization requested"),
    )
    AUTHORIZATION_VIEWED = "authorization.viewed", pgettext_lazy("audit action", "Authorization viewed by staff")
    LOGIN_SUCCEEDED = "login.succeeded", pgettext_lazy("audit action", "Sign-in succeeded")
    LOGIN_FAILED = "login.failed", pgettext_lazy("audit action", "Sign-in failed")
    ADMIN_ADDED = "admin.added", pgettext_lazy("audit action", "Admin: object added")
    ADMIN_CHANGED = "admin.changed", pgettext_lazy("audit action", "Admin: object changed")
    ADMIN_DELETED = "admin.deleted", pgettext_lazy("audit action", "Admin: object deleted")
    AUDIT_REPORT_VIEWED = "audit.report_viewed", pgettext_lazy("audit action", "Audit report viewed")
    AUDIT_EXPORTED = "audit.exported", pgettext_lazy("audit action", "Audit log exported")
    AUDIT_CHAIN_BROKEN = "audit.chain_broken", pgettext_lazy("audit action", "Audit chain verification failed")
    ANOMALY_FLAGGED = "anomaly.flagged", pgettext_lazy("audit action", "Anomaly flagged")
    ANOMALY_ACKNOWLEDGED = "anomaly.acknowledged", pgettext_lazy("audit action", "Anomaly acknowledged")
    ANOMALY_RESOLVED = "anomaly.resolved", pgettext_lazy("audit action", "Anomaly resolved")
    NOTICE_QUEUED = "notice.queued", pgettext_lazy("audit action", "Notice to elder queued")
    NOTICE_SENT = "notice.sent", pgettext_lazy("audit action", "Notice to elder sent")
    NOTICE_FAILED = "notice.failed", pgettext_lazy("audit action", "Notice to elder failed")
    NOTICE_SMS_ALERT = "notice.sms_alert", pgettext_lazy("audit action", "SMS gateway needs attention")
    KEYS_ROTATED = "keys.rotated", pgettext_lazy("audit action", "Encryption keys rotated")
    RETENTION_LOOKUP_DELETED = (
        "retention.lookup_deleted",
        pgettext_lazy("audit action", "Old lookup deleted (retention)"),
    )
    RETENTION_APPLIED = "retention.applied", pgettext_lazy("audit action", "Retention sweep applied")
    FHIR_DELIVERY_ACCEPTED = "fhir.delivery_accepted", pgettext_lazy("audit action", "Laboratory delivery accepted")
    FHIR_DELIVERY_REFUSED = "fhir.delivery_refused", pgettext_lazy("audit action", "Laboratory delivery refused")
    FHIR_REPORT_CORRECTED = "fhir.report_corrected", pgettext_lazy("audit action", "Laboratory report corrected")
    FHIR_REPORT_WITHDRAWN = (
        "fhir.report_withdrawn",
        pgettext_lazy("audit action", "Laboratory report withdrawn (entered in error)"),
    )
    FHIR_PENDING_DISCARDED = (
        "fhir.pending_discarded",
        pgettext_lazy("audit action", "Result waiting for a registration discarded"),
    )


A = AuditAction


@dataclass(frozen=True)
class ActionInfo:
    category: str
    reports: frozenset[Report]


def _info(category: str, *reports: Report) -> ActionInfo:
    return ActionInfo(category, frozenset({Report.EXPORT, *reports}))


_E, _SV, _L, _AU, _N = Report.ELDER, Report.STAFF_VIEW, Report.LOOKUP, Report.AUTHORIZATION, Report.NOTICE

INFO: dict[AuditAction, ActionInfo] = {
    A.LOOKUP_STARTED: _info("query", _E, _L),
    A.LOOKUP_START_REFUSED: _info("query"),
    A.OTP_VERIFIED: _info("authentication"),
    A.OTP_FAILED: _info("authentication"),
    A.OTP_THROTTLED: _info("authentication"),
    A.FACE_SUBMITTED: _info("authentication"),
    A.FACE_UPLOAD_REFUSED: _info("authentication"),
    A.FACE_VERDICT: _info("authentication"),
    A.FACE_NOT_QUEUED: _info("authentication"),
    A.FACE_EXPIRED: _info("authentication"),
    A.FACE_CHALLENGE_ISSUED: _info("authentication"),
    A.FACE_CHALLENGE_REFUSED: _info("authentication"),
    A.LOOKUP_GRANTED: _info("query", _E, _L),
    A.LOOKUP_DENIED: _info("query", _E, _L),
    A.LOOKUP_CANCELLED: _info("query", _E, _L),
    A.LOOKUP_EXPIRED: _info("query", _E, _L),
    A.GRANT_EXPIRED: _info("query", _E, _L),
    A.RESULTS_VIEWED: _info("read", _E, _L),
    A.PERSON_REGISTERED: _info("create"),
    A.PERSON_VIEWED: _info("read", _E, _SV),
    A.IDENTITY_CHECKED: _info("update"),
    A.PREFERENCES_CHANGED: _info("update"),
    A.RESULT_RECORDED: _info("create"),
    A.RESULTS_IMPORTED: _info("create"),
    A.RESULTS_IMPORT_ABANDONED: _info("delete"),
    A.RESULT_VIEWED_BY_STAFF: _info("read", _E, _SV),
    A.RESULT_SAMPLING_PHOTO_VIEWED: _info("read", _E, _SV),
    A.ACCOUNT_CREATED: _info("create"),
    A.ACCOUNT_SET_PASSWORD_LINK_ISSUED: _info("update"),
    A.ACCOUNT_PASSWORD_SET: _info("update"),
    A.CLINIC_CREATED: _info("create"),
    A.STAFF_ROLE_GRANTED: _info("update"),
    A.STAFF_REVERIFIED: _info("authentication"),
    A.STAFF_REVERIFY_FAILED: _info("authentication"),
    A.OTP_DEVICE_CREATED: _info("create"),
    A.OTP_DEVICE_CONFIRMED: _info("update"),
    A.OTP_DEVICE_CHANGED: _info("update"),
    A.OTP_DEVICE_REPLACED: _info("update"),
    A.OTP_BACKUP_CODES_ISSUED: _info("create"),
    A.FACE_CONSENT_RECORDED: _info("create"),
    A.FACE_CONSENT_WITHDRAWN: _info("update"),
    A.FACE_ENROLLED: _info("create"),
    A.FACE_TEMPLATE_DELETED: _info("delete"),
    A.AUTHORIZATION_CREATED: _info("create", _E, _AU),
    A.AUTHORIZATION_APPROVED: _info("update", _E, _AU),
    A.AUTHORIZATION_REVOKED: _info("update", _E, _AU),
    A.AUTHORIZATION_SUSPENDED: _info("update", _E, _AU),
    A.AUTHORIZATION_RENEWED: _info("update", _E, _AU),
    A.AUTHORIZATION_REMOVAL_REQUESTED: _info("update", _E, _AU),
    A.AUTHORIZATION_VIEWED: _info("read", _E, _SV),
    A.LOGIN_SUCCEEDED: _info("login", Report.SIGN_IN),
    A.LOGIN_FAILED: _info("login", Report.SIGN_IN),
    A.ADMIN_ADDED: _info("create"),
    A.ADMIN_CHANGED: _info("update"),
    A.ADMIN_DELETED: _info("delete"),
    A.AUDIT_REPORT_VIEWED: _info("read", _E, _SV),
    A.AUDIT_EXPORTED: _info("copy"),
    A.AUDIT_CHAIN_BROKEN: _info("security"),
    A.ANOMALY_FLAGGED: _info("security"),
    A.ANOMALY_ACKNOWLEDGED: _info("security"),
    A.ANOMALY_RESOLVED: _info("security"),
    A.NOTICE_QUEUED: _info("notice"),
    A.NOTICE_SENT: _info("notice", _E, _N),
    A.NOTICE_FAILED: _info("notice", _E, _N),
    A.NOTICE_SMS_ALERT: _info("notice"),
    A.KEYS_ROTATED: _info("security"),
    A.RETENTION_LOOKUP_DELETED: _info("delete"),
    A.RETENTION_APPLIED: _info("delete"),
    A.FHIR_DELIVERY_ACCEPTED: _info("create"),
    A.FHIR_DELIVERY_REFUSED: _info("security"),
    A.FHIR_REPORT_CORRECTED: _info("update"),
    A.FHIR_REPORT_WITHDRAWN: _info("delete"),
    A.FHIR_PENDING_DISCARDED: _info("delete"),
}

# Names written before the vocabulary closed -> the member that records the same fact now.
LEGACY_ACTIONS: dict[str, AuditAction] = {
    "staff.signed_in": A.LOGIN_SUCCEEDED,
    "staff.sign_in_failed": A.LOGIN_FAILED,
}


class UnknownAuditAction(ValueError):
    """Raised when code tries to write an action outside :class:`AuditAction`."""


def require_action(action: str) -> AuditAction:
    """The member for ``action``; legacy names and unknown strings are refused."""
    try:
        return AuditAction(action)
    except ValueError:
        raise UnknownAuditAction(f"{action!r} is not in lookups.audit_vocabulary.AuditAction") from None


def resolve(action: str) -> AuditAction | None:
    """The member a stored action reads as (legacy names included), or None."""
    if action in LEGACY_ACTIONS:
        return LEGACY_ACTIONS[action]
    try:
        return AuditAction(action)
    except ValueError:
        return None


def stored_values(*reports: Report) -> frozenset[str]:
    """Every stored string (members and their legacy names) in all of ``reports``."""
    members = {member for member, info in INFO.items() if all(report in info.reports for report in reports)}
    return frozenset({m.value for m in members} | {old for old, new in LEGACY_ACTIONS.items() if new in members})


def label(action: str) -> str:
    member = resolve(action)
    return str(member.label) if member is not None else action


def category(action: str) -> str:
    member = resolve(action)
    return INFO[member].category if member is not None else "other"
