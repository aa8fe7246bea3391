"""Every sentence a guardian is shown when a step is refused or a lookup ends, in one place.

Marked for translation with ``gettext_lazy`` (so ``makemessages`` extracts them) and turned
into text in the active language when asked for. Services raise ``LookupRefused(code,
refusal_message(code))``; selectors, forms and views show ``face_reason_message``,
``face_check_message`` and ``end_reason_message``. No Django models are written here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .models import FaceCheck

if TYPE_CHECKING:
    from .models import LookupRequest

# ``LookupRefused.code`` → the sentence shown for it (photo codes: ``FACE_REASON_MESSAGES``).
REFUSAL_MESSAGES = {
    "expired": gettext_lazy("This lookup has expired. Please start a new one."),
    "finished": gettext_lazy("This lookup has ended. Please start a new one."),
    "not_authorized": gettext_lazy("Your authorization for this person is no longer active."),
    "wrong_step": gettext_lazy("This step is not available now."),
    "no_device": gettext_lazy("No authenticator is set up for you. Please ask the clinic."),
    "throttled": gettext_lazy("Too many wrong codes. Please wait before trying again."),
    "replayed": gettext_lazy("That code was already used. Wait for the next code in your app."),
    "wrong_code": gettext_lazy("That code is not correct. Check your authenticator app and try again."),
    "empty": gettext_lazy("Please take or choose a photo of your face."),
    "face_delay": gettext_lazy("Too many failed face checks. Please wait before trying again."),
    "not_staff": gettext_lazy("You are not staff of this person's clinic."),
    "bad_dates": gettext_lazy("A result cannot be reported before the sample was taken."),
    "reason_required": gettext_lazy("Type why you need to see this photo (at least a few words)."),
}


def refusal_message(code: str) -> str:
    """The sentence for a ``LookupRefused`` code, in the active language.

    Photo codes (``face_pipeline.REJECTION_CODES``, the capture budget's) use
    :func:`face_reason_message`; an unknown code here is a programming error (KeyError).
    """
    return str(REFUSAL_MESSAGES[code])


# One sentence per ``face_pipeline.REJECTION_CODES`` code (upload refused in the web process or
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
    # Prompted liveness (``lookups.faces.liveness.CAPTURE_CODES``; ``no_match`` is an outcome).
    # They say what to do differently, not which measurement failed.
    "challenge_not_done": gettext_lazy(
        "We did not see the action you were asked for. Please retake and follow the prompt on the screen."
    ),
    "not_continuous": gettext_lazy(
        "Your face left the picture or the video was interrupted. Keep your face in the frame and retake."
    ),
    "flat_surface": gettext_lazy(
        "We could not confirm a live face. Look at the camera yourself (not a photo or a screen) and retake."
    ),
    # no longer decided (a capture embeds one frame, bound to the action by continuity); kept so
    # face checks recorded with it still show their sentence
    "identity_changed": gettext_lazy(
        "The face changed during the capture. Only the person signing in may be in the picture. Please retake."
    ),
    "several_faces": gettext_lazy("More than one face is in the picture. Please retake with only your own face."),
    "bad_challenge": gettext_lazy("This prompt is no longer valid. Please reload the page and retake."),
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
