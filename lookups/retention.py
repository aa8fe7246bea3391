"""Retention: personal data is kept only as long as the policy says; audit events stay.

Runs from Celery beat (``lookups.tasks.apply_retention``). Each deletion is audited in the
same transaction (one ``audit_record_many`` batch per chunk of rows). The audit chain is
never touched: events reference lookups by id only and carry no face data or full ID
numbers, so they remain valid evidence after the rows go.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from guardians.models import Authorization, FaceEnrollment

from .audit import Actor, AuditEntry, audit_record, audit_record_many
from .models import LookupRequest


@dataclass(frozen=True)
class RetentionReport:
    lookups_deleted: int
    templates_deleted: int
    probes_deleted: int


#: rows deleted (and audited, in one batch) per transaction by a retention sweep
RETENTION_CHUNK = 500


def _chunks(ids: list, size: int = RETENTION_CHUNK):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _delete_old_lookups(now: dt.datetime, actor: Actor) -> int:
    """Finished lookups (and their face checks) older than the policy are deleted.

    Per chunk, one transaction: the rows are locked and re-checked, their events appended
    with one ``audit_record_many`` and the rows deleted, so each deletion is audited exactly
    when it is committed.
    """
    cutoff = now - dt.timedelta(days=settings.KINGUARD_RETENTION_LOOKUP_DAYS)
    finished = LookupRequest.objects.filter(state__in=LookupRequest.FINAL_STATES, ended_at__lt=cutoff)
    deleted = 0
    for chunk in _chunks(list(finished.values_list("id", flat=True)[:10_000])):
        with transaction.atomic():
            lookups = list(
                LookupRequest.objects.select_for_update(of=("self",))
                .select_related("elder__clinic")
                .filter(pk__in=chunk, ended_at__lt=cutoff)
                .order_by("pk")
            )
            if not lookups:
                continue
            audit_record_many(
                actor,
                [
                    AuditEntry(
                        action="retention.lookup_deleted",
                        outcome="deleted",
                        subject=lookup.elder,
                        clinic=lookup.elder.clinic,
                        details={"lookup": str(lookup.pk), "ended_at": lookup.ended_at},
                    )
                    for lookup in lookups
                ],
            )
            LookupRequest.objects.filter(pk__in=[lookup.pk for lookup in lookups]).delete()
            deleted += len(lookups)
    return deleted


def templates_due_for_deletion(now: dt.datetime):
    """Templates of people with no live authorization as guardian and no self-lookup right,
    idle for longer than KINGUARD_RETENTION_FACE_TEMPLATE_DAYS."""
    cutoff = now - dt.timedelta(days=settings.KINGUARD_RETENTION_FACE_TEMPLATE_DAYS)
    live = Q(status__in=[Authorization.Status.ACTIVE, Authorization.Status.PENDING, Authorization.Status.SUSPENDED])
    live &= Q(valid_until__gt=now)
    people_with_live_authorizations = Authorization.objects.filter(live).values("guardian_id")
    return (
        FaceEnrollment.objects.exclude(person_id__in=people_with_live_authorizations)
        .exclude(person__is_elder=True, person__user__isnull=False)
        .annotate(
            # An authorization stopped counting when it was ended, or else when it ran out.
            last_authorized=Max(
                Coalesce(
                    "person__authorizations_as_guardian__ended_at",
                    "person__authorizations_as_guardian__valid_until",
                )
            ),
        )
        .filter(enrolled_at__lt=cutoff)
        .filter(Q(last_authorized__isnull=True) | Q(last_authorized__lt=cutoff))
    )


def _delete_idle_templates(now: dt.datetime, actor: Actor) -> int:
    """Idle face templates are deleted, per chunk in one transaction with one audit batch."""
    deleted = 0
    for chunk in _chunks(list(templates_due_for_deletion(now).values_list("pk", flat=True))):
        with transaction.atomic():
            locked = list(
                FaceEnrollment.objects.select_for_update(of=("self",))
                .select_related("person__clinic")
                .filter(pk__in=chunk)
                .order_by("pk")
            )
            still_due = set(templates_due_for_deletion(now).filter(pk__in=chunk).values_list("pk", flat=True))
            enrollments = [enrollment for enrollment in locked if enrollment.pk in still_due]
            if not enrollments:
                continue
            audit_record_many(
                actor,
                [
                    AuditEntry(
                        action="face.template_deleted",
                        outcome="retention",
                        subject=enrollment.person,
                        clinic=enrollment.person.clinic,
                        details={"enrolled_at": enrollment.enrolled_at},
                    )
                    for enrollment in enrollments
                ],
            )
            FaceEnrollment.objects.filter(pk__in=[enrollment.pk for enrollment in enrollments]).delete()
            deleted += len(enrollments)
    return deleted


def _delete_old_probes(now_epoch: float) -> int:
    """Nothing stays in the probe folder longer than KINGUARD_RETENTION_PROBE_MINUTES."""
    folder = Path(settings.PROBE_DIR)
    if not folder.is_dir():
        return 0
    limit = now_epoch - settings.KINGUARD_RETENTION_PROBE_MINUTES * 60
    deleted = 0
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < limit:
                path.unlink()
                deleted += 1
        except FileNotFoundError:
            continue
    return deleted


def retention_apply(*, now: dt.datetime | None = None) -> RetentionReport:
    """Apply the whole retention policy once. Idempotent; safe to run concurrently."""
    now = now or timezone.now()
    actor = Actor.system("retention")
    report = RetentionReport(
        lookups_deleted=_delete_old_lookups(now, actor),
        templates_deleted=_delete_idle_templates(now, actor),
        probes_deleted=_delete_old_probes(now.timestamp()),
    )
    if report.lookups_deleted or report.templates_deleted or report.probes_deleted:
        with transaction.atomic():
            audit_record(actor=actor, action="retention.applied", outcome="ok", details=report.__dict__)
    return report
