"""Reads for the guardian and elder pages. Scoping comes from ``guardians.permissions``.

Reads take no row lock (only the transitions in ``lookups.services`` do). The refusal and
reason sentences live in ``lookups.messages`` (re-exported here for existing callers).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from guardians import permissions
from guardians.models import Authorization, Clinic, Person, User

from .faces.images import MAX_UPLOAD_BYTES
from .messages import END_REASONS as END_REASONS  # re-exported: the messages live in .messages
from .messages import FACE_REASON_MESSAGES as FACE_REASON_MESSAGES
from .messages import end_reason_message as end_reason_message
from .messages import face_check_message as face_check_message
from .messages import face_reason_message as face_reason_message
from .models import AuditEvent, FaceCheck, LookupRequest
from .services.common import LookupNotFound, expiry_due
from .session_binding import binding_matches

if TYPE_CHECKING:
    from .audit import Actor


def lookup_for_page(*, actor: Actor, lookup_id: uuid.UUID | str, session_binding: str | None = None) -> LookupRequest:
    """The user's own lookup, from the session that started it, read without a row lock.

    For page loads and the status poll, which only read: only transitions lock the row
    (``lookups.services``), so a poll never waits for, or holds up, the face worker. A lookup
    whose time has run out is expired first, through the locked ``lookup_status`` transition,
    so what the page shows is the same as before. Others' ids, the user's lookups seen from
    another session, and a request with no user raise ``LookupNotFound``.
    """
    user = actor.user
    if user is None:
        raise LookupNotFound
    try:
        lookup = LookupRequest.objects.filter(requester=user).get(pk=lookup_id)
    except (LookupRequest.DoesNotExist, ValueError) as exc:
        raise LookupNotFound from exc
    if not binding_matches(lookup.session_binding, session_binding):
        raise LookupNotFound
    if expiry_due(lookup, timezone.now()) is not None:
        from .services import lookup_status

        return lookup_status(actor=actor, lookup_id=lookup_id, session_binding=session_binding)
    return lookup


def elders_for_dashboard(user: User) -> QuerySet[Person]:
    return (
        permissions.elders_for(user).only("public_id", "full_name", "id_number_masked", "user_id").order_by("full_name")
    )


def recent_lookups(user: User, limit: int = 10) -> list[LookupRequest]:
    return list(LookupRequest.objects.filter(requester=user).select_related("elder").order_by("-created_at")[:limit])


def last_face_check(lookup: LookupRequest) -> FaceCheck | None:
    return lookup.face_checks.order_by("-created_at").first()


def read_upload(upload: UploadedFile) -> bytes:
    """Read at most one byte over the pipeline's limit, so the size check can refuse it."""
    upload.seek(0)
    return upload.read(MAX_UPLOAD_BYTES + 1)


def clinic_of_lookup(lookup: LookupRequest) -> Clinic:
    """The clinic to ask for help about a lookup: the elder's clinic."""
    return lookup.elder.clinic


# --- the elder's own pages ----------------------------------------------------------------


def own_person(user: User) -> Person | None:
    """The elder record of a signed-in elder, or None (guardians, staff, anonymous)."""
    if not permissions.is_elder_user(user):
        return None
    return Person.objects.select_related("clinic").get(user=user)


def guardians_of_elder(user: User) -> list[Authorization]:
    """'My guardians': current authorizations where ``user`` is the elder, soonest end first."""
    return list(
        permissions.authorizations_of_elder(user)
        .select_related("guardian", "clinic")
        .only(
            "id",
            "status",
            "relationship",
            "valid_from",
            "valid_until",
            "guardian__full_name",
            "clinic__name",
            "clinic__phone",
        )
        .order_by("valid_until")
    )


def removal_requested_ids(authorizations: list[Authorization]) -> set[int]:
    """Ids among ``authorizations`` whose removal the elder has already asked for."""
    from guardians.services import REMOVAL_REQUEST_ACTION

    ids = [str(a.pk) for a in authorizations]
    found = AuditEvent.objects.filter(
        action=REMOVAL_REQUEST_ACTION, target_type=Authorization._meta.label, target_id__in=ids
    ).values_list("target_id", flat=True)
    return {int(pk) for pk in found}


HISTORY_ACTIONS = ("lookup.started", "face.verdict", "results.viewed")


@dataclass
class LookupHistoryRow:
    """One lookup of the elder, as the elder is told about it (never IPs or devices)."""

    lookup_id: str
    started_at: dt.datetime
    who: str
    by_self: bool
    relationship: str = ""
    face_outcomes: list[str] = field(default_factory=list)
    results_viewed_at: dt.datetime | None = None

    @property
    def outcome(self) -> str:
        if self.results_viewed_at is not None:
            return _("Saw the results")
        if FaceCheck.Outcome.MATCH in self.face_outcomes:
            return _("Passed the checks")
        if FaceCheck.Outcome.NO_MATCH in self.face_outcomes:
            return _("Stopped: the face did not match")
        if self.face_outcomes:
            return _("Stopped: the face check did not succeed")
        return _("Started, results not seen")

    @property
    def saw_results(self) -> bool:
        return self.results_viewed_at is not None


def lookup_history_of_elder(person: Person, limit: int = 50) -> list[LookupHistoryRow]:
    """'Who looked me up', from the audit log: every lookup of ``person``, newest first.

    Built from ``lookup.started`` / ``face.verdict`` / ``results.viewed`` events with
    ``subject=person``; the requester's name comes from the lookup. Two queries.
    """
    events = list(
        AuditEvent.objects.filter(subject=person, action__in=HISTORY_ACTIONS)
        .only("action", "outcome", "created_at", "target_id", "details")
        .order_by("-sequence")[: limit * 8]
    )

    def lookup_key(event: AuditEvent) -> str:
        if event.action == "face.verdict":
            return str((event.details or {}).get("lookup", ""))
        return event.target_id

    ids = {lookup_key(e) for e in events if e.action == "lookup.started"}
    lookups = {
        str(item.pk): item
        for item in LookupRequest.objects.filter(pk__in=ids).select_related("requester_person", "authorization")
    }
    rows: dict[str, LookupHistoryRow] = {}
    for event in sorted(events, key=lambda e: e.created_at):
        key = lookup_key(event)
        lookup = lookups.get(key)
        if lookup is None:
            continue
        if event.action == "lookup.started":
            rows[key] = LookupHistoryRow(
                lookup_id=key,
                started_at=event.created_at,
                who=lookup.requester_person.full_name,
                by_self=lookup.is_self_lookup,
                relationship=lookup.authorization.get_relationship_display() if lookup.authorization else "",
            )
        elif key in rows and event.action == "face.verdict":
            rows[key].face_outcomes.append(event.outcome)
        elif key in rows and event.action == "results.viewed" and rows[key].results_viewed_at is None:
            rows[key].results_viewed_at = event.created_at
    return sorted(rows.values(), key=lambda row: row.started_at, reverse=True)[:limit]
