"""Audited writes of the oversight layer: sign-ins, staff record views, admin changes, chain check.

Every function takes the acting ``Actor`` explicitly (never thread-locals or signals) and
writes its audit event through ``lookups.audit.audit_record`` in its own or the caller's
transaction. No face data and no full ID numbers ever go into event details.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from guardians.models import Authorization, Clinic, Person, StaffMembership

from ..audit import Actor, ChainBreak, audit_record, verify_chain
from ..models import AnomalyFlag, TestResult

if TYPE_CHECKING:
    from guardians.models import User

logger = logging.getLogger("kinguard.audit")

# A broken chain is one fact, not a window: its flag is keyed by the first broken event.
CHAIN_FLAG_WINDOW = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def home_clinic_of(user: User | None) -> Clinic | None:
    """The clinic an account belongs to: its person's clinic, else its only staff clinic."""
    if user is None:
        return None
    person = Person.objects.filter(user_id=user.pk).select_related("clinic").first()
    if person is not None:
        return person.clinic
    memberships = list(StaffMembership.objects.filter(user_id=user.pk).select_related("clinic")[:2])
    return memberships[0].clinic if len(memberships) == 1 else None


# --- sign-ins -----------------------------------------------------------------------------


def login_record_success(*, actor: Actor, via: str) -> None:
    """Audit a successful sign-in. ``actor`` carries the user who just signed in, IP and UA."""
    user = actor.user
    audit_record(
        actor=actor,
        action="login.succeeded",
        outcome="ok",
        subject=Person.objects.filter(user_id=user.pk).first() if user else None,
        target=user,
        clinic=home_clinic_of(user),
        details={"via": via, "otp_verified": getattr(user, "otp_device", None) is not None},
    )


def login_record_failure(*, actor: Actor, username: str, via: str, reasons: list[str]) -> None:
    """Audit a failed sign-in. The attempted username is kept; the password never is.

    When the username names an existing account, that account is the event's target and
    its clinic the event's clinic, so the clinic's auditors see attacks on their people.
    """
    username = (username or "").strip()[:150]
    user = get_user_model().objects.filter(username=username).first() if username else None
    audit_record(
        actor=actor,
        action="login.failed",
        outcome=(reasons[0] if reasons else "invalid_login")[:30],
        subject=Person.objects.filter(user_id=user.pk).first() if user else None,
        target=user,
        clinic=home_clinic_of(user),
        details={"via": via, "username": username, "reasons": reasons[:5], "known_account": user is not None},
    )


# --- staff views of records ---------------------------------------------------------------


def person_view_record(*, actor: Actor, person: Person) -> None:
    """Audit a staff member opening a person's record (staff workspace or admin)."""
    audit_record(
        actor=actor,
        action="person.viewed",
        outcome="ok",
        subject=person,
        target=person,
        clinic=person.clinic,
        details={"is_elder": person.is_elder, "is_guardian": person.is_guardian},
    )


def authorization_view_record(*, actor: Actor, authorization: Authorization) -> None:
    """Audit a staff member opening an authorization (who may act for the elder, and why)."""
    audit_record(
        actor=actor,
        action="authorization.viewed",
        outcome="ok",
        subject=authorization.elder,
        target=authorization,
        clinic=authorization.clinic,
    )


def result_view_record(*, actor: Actor, result: TestResult) -> None:
    """Audit a staff member opening a test result (and its sampling photo) in the admin."""
    audit_record(
        actor=actor,
        action="result.viewed_by_staff",
        outcome="ok",
        subject=result.elder,
        target=result,
        clinic=result.clinic,
        details={"kind": result.kind, "with_photo": bool(result.sampling_photo)},
    )


def audit_report_view_record(*, actor: Actor, report: str, subject: Person | None, details: dict[str, Any]) -> None:
    """Audit an auditor reading a report about a person (reading the log is itself logged)."""
    audit_record(
        actor=actor,
        action="audit.report_viewed",
        outcome="ok",
        subject=subject,
        target=subject,
        clinic=subject.clinic if subject else None,
        details={"report": report, **details},
    )


def audit_export_record(*, actor: Actor, details: dict[str, Any]) -> None:
    audit_record(actor=actor, action="audit.exported", outcome="ok", details=details)


# --- admin changes ------------------------------------------------------------------------

_ADMIN_ACTIONS = {"added": "admin.added", "changed": "admin.changed", "deleted": "admin.deleted"}


def _subject_and_clinic(obj: models.Model) -> tuple[Person | None, Clinic | None]:
    if isinstance(obj, Person):
        return obj, obj.clinic
    if isinstance(obj, Clinic):
        return None, obj
    subject = None
    for name in ("elder", "person"):
        candidate = getattr(obj, name, None) if hasattr(obj, f"{name}_id") else None
        if isinstance(candidate, Person):
            subject = candidate
            break
    clinic = getattr(obj, "clinic", None) if hasattr(obj, "clinic_id") else None
    if clinic is None and subject is not None:
        clinic = subject.clinic
    return subject, clinic if isinstance(clinic, Clinic) else None


def admin_change_record(*, actor: Actor, change: str, obj: models.Model, message: Any = "") -> None:
    """Audit one admin add/change/delete. Runs inside the admin's own transaction.

    ``message`` is Django's change message (field names, never values), kept as given.
    """
    subject, clinic = _subject_and_clinic(obj)
    audit_record(
        actor=actor,
        action=_ADMIN_ACTIONS[change],
        outcome="ok",
        subject=subject,
        target=obj,
        clinic=clinic,
        details={"model": obj._meta.label, "object": str(obj)[:200], "message": message},
    )


# --- the chain check (Celery beat) --------------------------------------------------------


def _alert_recipients() -> list[str]:
    recipients = [email for _, email in settings.ADMINS]
    recipients += list(settings.KINGUARD_ALERT_EMAILS)
    return sorted(set(recipients))


def audit_chain_check(*, actor: Actor | None = None) -> ChainBreak | None:
    """Verify the whole chain; on a break, raise the alarm once (idempotent).

    The alarm is: a CRITICAL log line, an email to ``ADMINS`` + ``KINGUARD_ALERT_EMAILS``,
    an ``audit.chain_broken`` event and an AnomalyFlag (rule chain_broken). The flag is
    unique per first broken event, so later runs over the same break only refresh its
    ``last_seen_at`` and send nothing.
    """
    actor = actor or Actor.system("audit-verifier")
    checked, broken = verify_chain()
    if broken is None:
        logger.info("audit chain intact: %s events verified", checked)
        return None
    now = timezone.now()
    key = f"sequence:{broken.sequence}"
    try:
        with transaction.atomic():
            flag, created = AnomalyFlag.objects.get_or_create(
                rule=AnomalyFlag.Rule.CHAIN_BROKEN,
                key=key,
                window_start=CHAIN_FLAG_WINDOW,
                defaults={
                    "window_end": now,
                    "count": 1,
                    "details": {"sequence": broken.sequence, "reason": broken.reason, "verified_before": checked},
                    "created_at": now,
                    "last_seen_at": now,
                },
            )
            if created:
                audit_record(
                    actor=actor,
                    action="audit.chain_broken",
                    outcome="failed",
                    target=flag,
                    details={"sequence": broken.sequence, "reason": broken.reason, "verified_before": checked},
                )
                transaction.on_commit(lambda: _send_chain_alert(broken, checked))
            else:
                AnomalyFlag.objects.filter(pk=flag.pk).update(last_seen_at=now)
    except IntegrityError:  # a concurrent run created the flag first: it raised the alarm
        created = False
    logger.critical(
        "AUDIT CHAIN BROKEN at event #%s: %s (%s events verified before it)%s",
        broken.sequence,
        broken.reason,
        checked,
        "" if created else " [already reported]",
    )
    return broken


def _send_chain_alert(broken: ChainBreak, checked: int) -> None:
    recipients = _alert_recipients()
    if not recipients:
        logger.critical("no alert recipients configured (ADMINS, KINGUARD_ALERT_EMAILS)")
        return
    try:
        mail.send_mail(
            subject=f"{settings.EMAIL_SUBJECT_PREFIX}Kinguard audit chain BROKEN at event #{broken.sequence}",
            message=(
                f"The periodic verification of the Kinguard audit log found a break.\n\n"
                f"First broken event: #{broken.sequence}\nReason: {broken.reason}\n"
                f"Events verified before it: {checked}\n\n"
                "Run `manage.py verify_audit` to confirm, and treat the database as possibly tampered with."
            ),
            from_email=settings.SERVER_EMAIL,
            recipient_list=recipients,
        )
    except Exception:  # the CRITICAL log line and the audit event remain
        logger.exception("could not email the audit chain alert")
