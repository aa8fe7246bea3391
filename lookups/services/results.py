"""Results: the guardian's view under a live grant, and results recorded by staff."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.files import File
from django.db import transaction

from guardians import permissions
from guardians.models import Person

from ..audit import Actor, audit_record
from ..messages import refusal_message
from ..models import LookupRequest, TestResult
from ..oversight.notices import notice_results_viewed
from .common import (
    LookupNotFound,
    LookupRefused,
    State,
    _audit_step,
    _guard,
    _locked_lookup,
    _now,
)

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ResultsView:
    lookup: LookupRequest
    results: list[TestResult]


RESULT_FIELDS = ("id", "kind", "sampled_at", "site", "lab", "result", "reported_at")


def results_view(*, actor: Actor, lookup_id: uuid.UUID | str, session_binding: str | None = None) -> ResultsView:
    """Return the elder's results under a live grant, and audit the view.

    Re-checks expiry and the authorization on every call: a revoked authorization or an
    ended grant hides the results at once. The sampling photo is never loaded.
    """
    now = _now()
    with transaction.atomic():
        lookup = _locked_lookup(lookup_id, actor.user, session_binding)
        refusal = _guard(lookup, actor, now, {State.GRANTED})
        if refusal is None:
            results = list(TestResult.objects.filter(elder=lookup.elder).only(*RESULT_FIELDS).order_by("-sampled_at"))
            _audit_step(
                lookup,
                actor=actor,
                action="results.viewed",
                outcome="shown",
                details={"results": [r.pk for r in results], "self": lookup.is_self_lookup},
            )
            notice_results_viewed(actor=actor, lookup=lookup)  # first view per lookup only
    if refusal is not None:
        raise refusal
    return ResultsView(lookup=lookup, results=results)


def result_record(
    *,
    actor: Actor,
    elder: Person,
    kind: str,
    sampled_at: dt.datetime,
    site: str,
    lab: str,
    result: str,
    reported_at: dt.datetime,
    sampling_photo: File | None = None,
) -> TestResult:
    """Record one test result for an elder of the actor's clinic, audited."""
    if not permissions.staff_can(actor.user, permissions.StaffAction.RECORD_RESULTS, elder.clinic_id):
        raise LookupRefused("not_staff", refusal_message("not_staff"))
    if reported_at < sampled_at:
        raise LookupRefused("bad_dates", refusal_message("bad_dates"))
    return result_save(
        actor=actor,
        elder=elder,
        kind=kind,
        sampled_at=sampled_at,
        site=site,
        lab=lab,
        result=result,
        reported_at=reported_at,
        sampling_photo=sampling_photo,
        source="staff",
    )


def result_save(
    *,
    actor: Actor,
    elder: Person,
    kind: str,
    sampled_at: dt.datetime,
    site: str,
    lab: str,
    result: str,
    reported_at: dt.datetime,
    sampling_photo: File | None = None,
    source: str = "staff",
) -> TestResult:
    """Write one result and its ``result.recorded`` event in one transaction.

    No permission check: callers decide who may record (``result_record`` checks staff, the
    FHIR endpoint checks the sender's clinics) and validate the dates.
    """
    with transaction.atomic():
        record = TestResult(
            clinic=elder.clinic,
            elder=elder,
            kind=kind,
            sampled_at=sampled_at,
            site=site,
            lab=lab,
            result=result,
            reported_at=reported_at,
            recorded_by=actor.user,
        )
        if sampling_photo:
            record.sampling_photo = sampling_photo
        record.save()
        audit_record(
            actor=actor,
            action="result.recorded",
            outcome="ok",
            subject=elder,
            target=record,
            clinic=elder.clinic,
            details={"kind": kind, "with_photo": bool(sampling_photo)}
            | ({} if source == "staff" else {"source": source}),
        )
    return record


def result_sampling_photo_open(*, actor: Actor, result_id: int, reason: str) -> tuple[File, str]:
    """Open a result's sampling photo for a staff member who typed a reason; audited.

    Only for staff allowed to view sampling photos at the result's clinic; anything else
    (other clinic, no photo, missing file) raises LookupNotFound. The reason is kept in the
    ``result.sampling_photo_viewed`` event. Returns (open file, content type).
    """
    import mimetypes

    reason = " ".join((reason or "").split())
    user = actor.user
    if user is None:
        raise LookupNotFound
    result = (
        permissions.staff_results(user, permissions.StaffAction.VIEW_SAMPLING_PHOTO)
        .select_related("elder", "clinic")
        .filter(pk=result_id)
        .first()
    )
    if result is None or not result.sampling_photo:
        raise LookupNotFound
    if len(reason) < 5:
        raise LookupRefused("reason_required", refusal_message("reason_required"))
    try:
        handle = result.sampling_photo.open("rb")
    except FileNotFoundError as exc:
        raise LookupNotFound from exc
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="result.sampling_photo_viewed",
            outcome="shown",
            subject=result.elder,
            target=result,
            clinic=result.clinic,
            details={"reason": reason[:300]},
        )
    content_type = mimetypes.guess_type(result.sampling_photo.name)[0] or "application/octet-stream"
    return handle, content_type
