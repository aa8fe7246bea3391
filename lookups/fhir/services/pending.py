"""Results waiting for a registration: attached when the person registers, or discarded.

Invariants: attaching happens inside ``person_register``'s transaction; only staff who may
record results at the result's clinic can discard, after the retention period, with a
reason; the audit carries the reason, sender and kinds, never values or the ID number.
"""

from __future__ import annotations

import datetime as dt
import json

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from guardians import crypto
from guardians.models import Person
from lookups.audit import Actor, audit_record

from ..models import LabReport, PendingLabResult


def pending_attach(*, actor: Actor, person: Person) -> int:
    """Attach results waiting for ``person`` (same keyed hash, a sender serving their clinic).

    Called by ``guardians.services.person_register`` inside its transaction, so the results
    exist exactly when the registration does. Returns how many results were recorded.
    """
    from lookups.services import result_save

    waiting = (
        PendingLabResult.objects.select_for_update()
        .filter(id_number_hash=person.id_number_hash, sender__clinics=person.clinic)
        .select_related("sender", "report")
        .order_by("received_at")
    )
    recorded = 0
    for pending in waiting:
        payload = json.loads(crypto.decrypt(bytes(pending.payload_ciphertext)))
        results = [
            result_save(
                actor=actor,
                elder=person,
                kind=row["kind"],
                sampled_at=dt.datetime.fromisoformat(row["sampled_at"]),
                site=pending.sender.name[:200],
                lab=pending.sender.name[:200],
                result=row["result"],
                reported_at=dt.datetime.fromisoformat(row["reported_at"]),
                source="fhir_pending",
            )
            for row in payload["rows"]
        ]
        report = pending.report
        report.outcome = LabReport.Outcome.RECORDED
        report.clinic = person.clinic
        report.save(update_fields=["outcome", "clinic"])
        report.results.set(results)
        pending.delete()
        recorded += len(results)
    return recorded


# --- the desk queue: results waiting for a registration ---------------------------------------

DEFAULT_PENDING_RETENTION_DAYS = 30
DISCARD_REASON_MAX = 500


class PendingNotFound(Exception):
    """No such waiting result in a clinic where the user may handle results (answer 404)."""


class DiscardRefused(Exception):
    """The discard is not allowed (yet); ``str()`` is the message for the desk."""


def pending_retention() -> dt.timedelta:
    return dt.timedelta(
        days=int(getattr(settings, "KINGUARD_PENDING_RESULT_RETENTION_DAYS", DEFAULT_PENDING_RETENTION_DAYS))
    )


def pending_discard(*, actor: Actor, pending_id: int, reason: str, now: dt.datetime | None = None) -> None:
    """Discard a waiting result (nobody registered) with a typed reason, after the retention period.

    Only staff allowed to record results at the result's clinic; anyone else gets
    PendingNotFound (the same as a missing id). The ``LabReport`` row stays (outcome
    ``discarded``) so a redelivery of the same report stays a no-op. Audited with the reason,
    the sender and the test kinds, never the values or the ID number.
    """
    from guardians import permissions

    user = actor.user
    if user is None:
        raise PendingNotFound
    reason = " ".join((reason or "").split())
    now = now or timezone.now()
    with transaction.atomic():
        pending = (
            PendingLabResult.objects.select_for_update(of=("self",))
            .select_related("report", "sender", "clinic")
            .filter(pk=pending_id, clinic__in=permissions.staff_clinics(user, permissions.StaffAction.RECORD_RESULTS))
            .first()
        )
        if pending is None:
            raise PendingNotFound
        if len(reason) < 5:
            raise DiscardRefused(_("Type why this result is discarded (at least a few words)."))
        if len(reason) > DISCARD_REASON_MAX:
            raise DiscardRefused(_("The reason is too long (at most 500 characters)."))
        until = pending.received_at + pending_retention()
        if now < until:
            raise DiscardRefused(
                _("This result can be discarded from %(date)s (it is kept for the person's registration until then).")
                % {"date": timezone.localtime(until).strftime("%Y-%m-%d")}
            )
        report = pending.report
        report.outcome = LabReport.Outcome.DISCARDED
        report.save(update_fields=["outcome"])
        audit_record(
            actor=actor,
            action="fhir.pending_discarded",
            outcome="discarded",
            target=report,
            clinic=pending.clinic,
            details={
                "sender": pending.sender.name,
                "received_at": pending.received_at.isoformat(),
                "kinds": pending.kinds,
                "reason": reason,
            },
        )
        pending.delete()
