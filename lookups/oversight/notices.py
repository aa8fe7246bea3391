"""Elder notices: the elder hears whenever someone else saw their results, and about every
authorization registered, approved, revoked or about to expire.

Exactly once per event: ``notice_queue`` creates the ``Notice`` row in the caller's
transaction (the one that writes the event), unique per (kind, object_key), and enqueues
``send_notice`` after commit (``lookups.task_queue``, by name). ``notice_send`` locks the row, returns at once
if it was already sent, and records per channel (email, SMS) what went out, so a task that
is retried or redelivered never sends a message twice. Sending never blocks a lookup: it
happens on the Celery ``default`` queue (published after commit, like ``delay_on_commit``,
but a broker outage is logged instead of failing the request, and the beat task publishes
pending notices again), retried with exponential backoff.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.core import mail
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from guardians import permissions, phones
from guardians.models import Authorization, Person

from .. import task_queue
from ..audit import Actor, audit_record
from ..models import LookupRequest, Notice
from .notices_lab import LAB_KINDS, lab_notice_text, lab_sms_params
from .sms import SmsAlertError, SmsMessage, SmsPermanentError, get_sms_backend

logger = logging.getLogger("kinguard.notices")
Kind = Notice.Kind


class NoticeDeliveryError(Exception):
    """At least one channel failed; the task retries (already-sent channels are skipped)."""


def _local(when: dt.datetime) -> str:
    return timezone.localtime(when).strftime("%Y-%m-%d %H:%M")


def notice_queue(*, actor: Actor, kind: str, object_key: str, person: Person, context: dict[str, Any]) -> Notice | None:
    """Create the notice for one event and enqueue its sending, once.

    Must run inside the transaction that writes the event. Returns None when a notice for
    (kind, object_key) already exists (e.g. a second view of the same lookup's results).
    """
    object_key = object_key[:100]
    if Notice.objects.filter(kind=kind, object_key=object_key).exists():
        return None
    try:
        with transaction.atomic():  # savepoint: a duplicate leaves the caller's transaction intact
            notice = Notice.objects.create(
                kind=kind, object_key=object_key, person=person, clinic=person.clinic, context=context
            )
    except IntegrityError:
        return None
    audit_record(
        actor=actor,
        action="notice.queued",
        outcome="queued",
        subject=person,
        target=notice,
        clinic=person.clinic,
        details={"kind": kind},
    )
    notice_id = notice.pk
    transaction.on_commit(lambda: _enqueue(notice_id), robust=True)
    return notice


def _enqueue(notice_id: int) -> None:
    """Publish ``send_notice`` after commit. A broker outage never fails the caller's request:
    the notice stays pending and ``notices_requeue_stale`` (beat) publishes it again."""
    try:
        task_queue.publish(task_queue.SEND_NOTICE, notice_id)
    except Exception:
        logger.warning("notice %s could not be queued now; the beat task will retry", notice_id, exc_info=True)


def notices_requeue_stale(*, now: dt.datetime | None = None) -> int:
    """Publish again the notices still pending and never attempted after a grace period (beat).

    Safe even when the first message is merely late: ``notice_send`` sends each notice once.
    """
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=settings.KINGUARD_NOTICE_REQUEUE_MINUTES)
    stale = list(
        Notice.objects.filter(status=Notice.Status.PENDING, attempts=0, created_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:1000]
    )
    for notice_id in stale:
        _enqueue(notice_id)
    return len(stale)


# --- hooks called by the services ---------------------------------------------------------


def notice_results_viewed(*, actor: Actor, lookup: LookupRequest) -> Notice | None:
    """Results of ``lookup`` were shown to its requester; tell the elder unless it was them."""
    if lookup.is_self_lookup:
        return None
    authorization = lookup.authorization
    return notice_queue(
        actor=actor,
        kind=Kind.RESULTS_VIEWED,
        object_key=str(lookup.pk),
        person=lookup.elder,
        context={
            "viewer": lookup.requester_person.full_name,
            "relationship": authorization.relationship if authorization else "",
            "at": timezone.now().isoformat(),
        },
    )


_AUTHORIZATION_KINDS = {
    "created": Kind.AUTHORIZATION_CREATED,
    "approved": Kind.AUTHORIZATION_APPROVED,
    "revoked": Kind.AUTHORIZATION_REVOKED,
}


def notice_authorization_changed(*, actor: Actor, authorization: Authorization, change: str) -> Notice | None:
    """An authorization for the elder was registered, approved or revoked."""
    return notice_queue(
        actor=actor,
        kind=_AUTHORIZATION_KINDS[change],
        object_key=str(authorization.pk),
        person=authorization.elder,
        context=_authorization_context(authorization),
    )


def _authorization_context(authorization: Authorization) -> dict[str, Any]:
    return {
        "guardian": authorization.guardian.full_name,
        "relationship": authorization.relationship,
        "valid_until": authorization.valid_until.isoformat(),
        "reason": authorization.end_reason,
    }


def notices_queue_expiring(*, now: dt.datetime | None = None) -> int:
    """Queue a notice for each active authorization ending within the notice period (beat).

    The object key includes the end date, so a renewed authorization is announced again
    when its new end approaches, and a run repeated in the same period queues nothing.
    """
    now = now or timezone.now()
    horizon = now + dt.timedelta(days=settings.KINGUARD_NOTICE_EXPIRY_DAYS)
    actor = Actor.system("notifier")
    ending = (
        Authorization.objects.filter(permissions.active_authorization_q(now), valid_until__lte=horizon)
        .select_related("elder__clinic", "guardian")
        .order_by("valid_until")
    )
    queued = 0
    for authorization in ending.iterator(chunk_size=500):
        key = f"{authorization.pk}:{authorization.valid_until.astimezone(dt.UTC):%Y%m%dT%H%M%S}"
        if Notice.objects.filter(kind=Kind.AUTHORIZATION_EXPIRING, object_key=key).exists():
            continue
        with transaction.atomic():
            notice = notice_queue(
                actor=actor,
                kind=Kind.AUTHORIZATION_EXPIRING,
                object_key=key,
                person=authorization.elder,
                context=_authorization_context(authorization),
            )
        queued += notice is not None
    return queued


# --- sending ------------------------------------------------------------------------------


def notice_language(person: Person) -> str:
    """The elder's own language if they chose one, else the deployment's notice language."""
    user = person.user if person.user_id else None
    return getattr(user, "preferred_language", "") or settings.KINGUARD_NOTICE_LANGUAGE


def _relationship_label(code: str) -> str:
    """The relationship in the active language (older notices stored the English label)."""
    try:
        return str(Authorization.Relationship(code).label)
    except ValueError:
        return code


def render_notice(notice: Notice) -> tuple[str, str, str]:
    """(email subject, email body, SMS text) in the elder's language. No results, no ID
    numbers: only who and when."""
    with translation.override(notice_language(notice.person)):
        return _render_notice(notice)


SMS_PARAM_MAX = 35  # Alibaba/Tencent template variables are limited to about 35 characters each


def sms_params(notice: Notice) -> dict[str, str]:
    """The SMS template parameters of a notice (template id = ``notice.kind``), in the elder's language.

    Per kind: results_viewed ``viewer, relationship, time, clinic, phone``; authorization_created
    and _approved ``guardian, relationship, until, clinic, phone``; authorization_revoked
    ``guardian, clinic, phone``; authorization_expiring ``guardian, until, clinic, phone``;
    result_corrected and result_withdrawn ``lab, viewers, time, clinic, phone``. No results, no ID numbers.
    """
    with translation.override(notice_language(notice.person)):
        c = notice.context
        params: dict[str, str] = {"clinic": notice.clinic.name, "phone": notice.clinic.phone or "-"}
        if notice.kind == Kind.RESULTS_VIEWED:
            params |= {
                "viewer": c.get("viewer", ""),
                "relationship": _relationship_label(c.get("relationship", "")),
                "time": _local(dt.datetime.fromisoformat(c["at"])) if c.get("at") else "",
            }
        elif notice.kind in LAB_KINDS:
            params |= lab_sms_params(c)
        else:
            params["guardian"] = c.get("guardian", "")
            if notice.kind != Kind.AUTHORIZATION_REVOKED:
                params["until"] = _local(dt.datetime.fromisoformat(c["valid_until"])) if c.get("valid_until") else ""
            if notice.kind in (Kind.AUTHORIZATION_CREATED, Kind.AUTHORIZATION_APPROVED):
                params["relationship"] = _relationship_label(c.get("relationship", ""))
        return {key: str(value)[:SMS_PARAM_MAX] for key, value in params.items()}


def _sms_alert(notice_id: int, kind: str, error: str) -> None:
    """Tell the operators the SMS gateway refuses every message (after commit; no personal data)."""
    from .services import _alert_recipients

    logger.critical("SMS GATEWAY NEEDS ATTENTION (notice %s, %s): %s", notice_id, kind, error)
    recipients = _alert_recipients()
    if not recipients:
        return
    try:
        mail.send_mail(
            subject=f"{settings.EMAIL_SUBJECT_PREFIX}Kinguard SMS gateway needs attention",
            message=(
                f"The SMS gateway refused notice #{notice_id} ({kind}) with:\n\n{error}\n\n"
                "This usually means the access key, the signature, a template code or the account "
                "balance needs fixing. Elder notices by SMS fail until it is fixed."
            ),
            from_email=settings.SERVER_EMAIL,
            recipient_list=recipients,
        )
    except Exception:
        logger.exception("could not email the SMS gateway alert")


def _render_notice(notice: Notice) -> tuple[str, str, str]:
    c = {**notice.context, "relationship": _relationship_label(notice.context.get("relationship", ""))}
    clinic = notice.clinic
    contact = _("If you did not expect this, please contact %(clinic)s%(phone)s.") % {
        "clinic": clinic.name,
        "phone": f" ({clinic.phone})" if clinic.phone else "",
    }
    until = _local(dt.datetime.fromisoformat(c["valid_until"])) if c.get("valid_until") else ""
    if notice.kind == Kind.RESULTS_VIEWED:
        when = _local(dt.datetime.fromisoformat(c["at"]))
        line = _("%(viewer)s (%(relationship)s) viewed your test results on %(when)s.") % {
            "viewer": c["viewer"],
            "relationship": c["relationship"],
            "when": when,
        }
        subject = _("Your test results were viewed")
    elif notice.kind in LAB_KINDS:
        line, subject = lab_notice_text(notice.kind, notice.context)
    elif notice.kind == Kind.AUTHORIZATION_CREATED:
        line = _("%(guardian)s (%(relationship)s) was registered to look up your test results, until %(until)s.") % {
            **c,
            "until": until,
        }
        subject = _("Someone was registered to look up your results")
    elif notice.kind == Kind.AUTHORIZATION_APPROVED:
        line = _("%(guardian)s (%(relationship)s) may now look up your test results, until %(until)s.") % {
            **c,
            "until": until,
        }
        subject = _("Permission to look up your results is now active")
    elif notice.kind == Kind.AUTHORIZATION_REVOKED:
        line = _("%(guardian)s can no longer look up your test results.") % c
        subject = _("Permission to look up your results was revoked")
    else:
        line = _("The permission of %(guardian)s to look up your test results ends on %(until)s.") % {
            **c,
            "until": until,
        }
        subject = _("Permission to look up your results ends soon")
    greeting = _("Dear %(name)s,") % {"name": notice.person.full_name}
    body = f"{greeting}\n\n{line}\n\n{contact}\n\n— Kinguard, {clinic.name}\n"
    return f"{settings.EMAIL_SUBJECT_PREFIX}{subject}", body, f"Kinguard: {line} {contact}"


def notice_send(*, notice_id: int) -> str:
    """Send one notice on every channel the elder has (the Celery task's body).

    Locks the notice row for the whole send, so two deliveries of the same task run one
    after the other; the second finds the channels already sent and sends nothing. On a
    failed channel the attempt is recorded and audited (``notice.failed``) and
    ``NoticeDeliveryError`` is raised after commit so the task retries, until
    ``KINGUARD_NOTICE_MAX_ATTEMPTS`` when the notice is marked failed. An SMS the gateway
    refuses for good (``SmsPermanentError``, or a stored number that is not valid) is given up
    (``sms_given_up_at``) and never retried; an ``SmsAlertError`` also alerts the operators
    (``notice.sms_alert``, after commit). A notice with nothing left to retry is ``sent`` when
    some channel went out, else ``failed``.
    """
    actor = Actor.system("notifier")
    retry = False
    with transaction.atomic():
        notice = Notice.objects.select_for_update().filter(pk=notice_id).first()
        if notice is None:
            return "missing"
        if notice.status != Notice.Status.PENDING:
            return notice.status
        person = Person.objects.select_related("clinic").get(pk=notice.person_id)
        notice.person = person
        audit: dict[str, Any] = {"actor": actor, "subject": person, "target": notice, "clinic": notice.clinic}
        email, phone = person.notify_email.strip(), person.phone.strip()
        if not email and not phone:
            notice.status = Notice.Status.NO_CONTACT
            notice.save(update_fields=["status"])
            audit_record(action="notice.failed", outcome="no_contact", details={"kind": notice.kind}, **audit)
            return notice.status
        subject, body, sms_text = render_notice(notice)
        now = timezone.now()
        notice.attempts += 1
        errors: list[str] = []  # retryable
        permanent: list[str] = []  # this channel gives up (sms_given_up_at)
        alert = ""
        if email and notice.email_sent_at is None:
            try:
                mail.send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [email])
            except Exception as exc:
                errors.append(f"email: {type(exc).__name__}")
                logger.warning("notice %s: email failed: %s", notice.pk, exc)
            else:
                notice.email_sent_at, notice.email_to = now, email
        if phone and notice.sms_sent_at is None and notice.sms_given_up_at is None:
            try:
                to = phones.normalize(phone)
                message = SmsMessage(to=to, template=notice.kind, params=sms_params(notice), text=sms_text)
                get_sms_backend().send(message)
            except phones.InvalidPhoneNumber:
                permanent.append("sms: InvalidPhoneNumber")
                notice.sms_given_up_at = now
            except SmsPermanentError as exc:
                permanent.append(f"sms: {type(exc).__name__}: {exc}"[:150])
                notice.sms_given_up_at = now
                logger.warning("notice %s: SMS refused for good: %s", notice.pk, exc)
                if isinstance(exc, SmsAlertError):
                    alert = str(exc)
            except Exception as exc:
                errors.append(f"sms: {type(exc).__name__}")
                logger.warning("notice %s: SMS failed: %s", notice.pk, exc)
            else:
                notice.sms_sent_at, notice.phone_to = now, to
        channels = [name for name, sent in (("email", notice.email_sent_at), ("sms", notice.sms_sent_at)) if sent]
        if alert:
            audit_record(
                action="notice.sms_alert",
                outcome="failed",
                details={"kind": notice.kind, "error": alert[:150]},
                **audit,
            )
            notice_pk, kind = notice.pk, notice.kind
            transaction.on_commit(lambda: _sms_alert(notice_pk, kind, alert), robust=True)
        if permanent and not errors:
            notice.last_error = "; ".join(permanent)[:300]
            notice.status = Notice.Status.SENT if channels else Notice.Status.FAILED
            notice.sent_at = now if channels else None
            audit_record(
                action="notice.sent" if channels else "notice.failed",
                outcome="partly_sent" if channels else "gave_up",
                details={"kind": notice.kind, "channels": channels, "attempt": notice.attempts, "errors": permanent},
                **audit,
            )
        elif errors:
            errors += permanent
            notice.last_error = "; ".join(errors)[:300]
            gave_up = notice.attempts >= settings.KINGUARD_NOTICE_MAX_ATTEMPTS
            notice.status = Notice.Status.FAILED if gave_up else Notice.Status.PENDING
            retry = not gave_up
            audit_record(
                action="notice.failed",
                outcome="failed" if gave_up else "will_retry",
                details={"kind": notice.kind, "attempt": notice.attempts, "errors": errors, "sent": channels},
                **audit,
            )
        else:
            notice.status, notice.sent_at, notice.last_error = Notice.Status.SENT, now, ""
            audit_record(
                action="notice.sent",
                outcome="sent",
                details={"kind": notice.kind, "channels": channels, "attempt": notice.attempts},
                **audit,
            )
        notice.save()
    if retry:
        raise NoticeDeliveryError(notice.last_error)
    return notice.status
