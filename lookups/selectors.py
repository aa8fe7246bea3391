"""Reads for the guardian and elder pages. Scoping comes from ``guardians.permissions``.

Every sentence shown to people is marked for translation here (``gettext_lazy``), so
``makemessages`` extracts it and it is rendered in the language of the request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from guardians import permissions
from guardians.models import Authorization, Clinic, Person, User
from lookups.faces.images import MAX_UPLOAD_BYTES

from .models import AuditEvent, FaceCheck, LookupRequest

# One sentence per ``REJECTION_CODES`` code (upload refused in the web process or
# photo refused by the worker), plus ``not_enrolled`` and the deployment's still-photo rule.
FACE_REASON_MESSAGES = {
    "empty": gettext_lazy("The photo is empty. Please take the photo again."),
    "not_an_image": gettext_lazy("This file is not a photo we can read. Please take a new photo (JPEG or PNG)."),
    "unreadable": gettext_lazy("The photo could not be read completely. Please take it again."),
    "too_large": gettext_lazy("The photo file is larger than 10 MB. Please use a smaller photo."),
    "too_many_pixels": gettext_lazy("The photo has far too many pixels. Please use the normal camera settings."),
    "animated": gettext_lazy("Animated pictures cannot be used. Please take a single still photo of your face."),
    "no_face": gettext_lazy("We could not find a face in the photo. Please retake it facing the camera."),
    "multiple_faces": gettext_lazy("More than one face is in the photo. Please retake it with only your face."),
    "face_too_small": gettext_lazy("Your face is too small in the photo. Please hold the camera closer and retake it."),
    "too_dark": gettext_lazy("The photo is too dark. Please move to a brighter place and retake it."),
    "too_blurry": gettext_lazy("The photo is blurred. Please hold still and retake it."),
    "too_few_frames": gettext_lazy("The camera capture was too short. Keep your face in the frame until it finishes."),
    "too_many_frames": gettext_lazy("The camera capture was too long. Please retake it."),
    "inconsistent_frames": gettext_lazy(
        "The camera pictures do not belong together. Please retake it with the camera."
    ),
    "replayed_still": gettext_lazy(
        "The frames look like a still photo. Please use the live camera and follow the prompt."
    ),
    "no_motion": gettext_lazy("We could not see you move. Please follow the on-screen prompt and retake."),
    "not_enrolled": gettext_lazy("Your face is not enrolled yet. Please visit the clinic to enroll."),
    "still_not_allowed": gettext_lazy(
        "A single photo cannot be used here: please use the live camera, or ask at the clinic."
    ),
}
_UNUSABLE = gettext_lazy("The photo could not be used. Please retake it.")


def face_reason_message(code: str) -> str:
    """The retake sentence for a refusal code, in the active language."""
    return str(FACE_REASON_MESSAGES.get(code, _UNUSABLE))


def face_check_message(check: FaceCheck | None) -> str:
    if check is None:
        return ""
    if check.outcome == FaceCheck.Outcome.MATCH:
        return _("Face matched.")
    if check.outcome == FaceCheck.Outcome.NO_MATCH:
        return _("The face did not match the face enrolled at the clinic. Please retake the photo in good light.")
    if check.outcome == FaceCheck.Outcome.REJECTED:
        return face_reason_message(check.reason_code)
    if check.outcome in (FaceCheck.Outcome.ERROR, FaceCheck.Outcome.EXPIRED):
        return _("The face check could not be completed. Please try again.")
    return ""


END_REASONS = {
    "grant_ended": gettext_lazy("Your time to view the results has ended. Start a new lookup to see them again."),
    "not_finished_in_time": gettext_lazy("This lookup was not finished in time. Please start a new one."),
    "authorization_inactive": gettext_lazy(
        "Your authorization for this person is no longer active. Please contact the clinic."
    ),
    "too_many_face_attempts": gettext_lazy(
        "Too many face checks failed for this lookup. Start a new one later or ask the clinic."
    ),
    "by_user": gettext_lazy("You cancelled this lookup."),
    "signed_out": gettext_lazy("You signed out, which ended this lookup."),
}


def end_reason_message(lookup: LookupRequest) -> str:
    return str(END_REASONS.get(lookup.end_reason, gettext_lazy("This lookup has ended.")))


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
