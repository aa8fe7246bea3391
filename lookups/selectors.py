"""Reads for the guardian pages. Scoping comes from ``guardians.permissions``."""

from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from guardians import permissions
from guardians.models import Person, User

from . import face_pipeline
from .models import FaceCheck, LookupRequest

FACE_REASON_MESSAGES = {
    "no_face": "We could not find a face in the photo. Please retake it facing the camera.",
    "multiple_faces": "More than one face is in the photo. Please retake it with only your face.",
    "face_too_small": "Your face is too small in the photo. Please hold the camera closer and retake it.",
    "too_dark": "The photo is too dark. Please move to a brighter place and retake it.",
    "too_blurry": "The photo is blurred. Please hold still and retake it.",
    "not_enrolled": "Your face is not enrolled yet. Please visit the clinic to enroll.",
    "replayed_still": "The frames look like a still photo. Please use the live camera and follow the prompt.",
    "no_motion": "We could not see you move. Please follow the on-screen prompt and retake.",
}


def face_check_message(check: FaceCheck | None) -> str:
    if check is None:
        return ""
    if check.outcome == FaceCheck.Outcome.MATCH:
        return _("Face matched.")
    if check.outcome == FaceCheck.Outcome.NO_MATCH:
        return _("The face did not match the face enrolled at the clinic. Please retake the photo in good light.")
    if check.outcome == FaceCheck.Outcome.REJECTED:
        return _(FACE_REASON_MESSAGES.get(check.reason_code, "The photo could not be used. Please retake it."))
    if check.outcome in (FaceCheck.Outcome.ERROR, FaceCheck.Outcome.EXPIRED):
        return _("The face check could not be completed. Please try again.")
    return ""


END_REASONS = {
    "grant_ended": "Your time to view the results has ended. Start a new lookup to see them again.",
    "not_finished_in_time": "This lookup was not finished in time. Please start a new one.",
    "authorization_inactive": "Your authorization for this person is no longer active. Please contact the clinic.",
    "too_many_face_attempts": "Too many face checks failed for this lookup. Start a new one later or ask the clinic.",
    "by_user": "You cancelled this lookup.",
}


def end_reason_message(lookup: LookupRequest) -> str:
    return _(END_REASONS.get(lookup.end_reason, "This lookup has ended."))


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
    return upload.read(face_pipeline.MAX_UPLOAD_BYTES + 1)
