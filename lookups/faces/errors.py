"""Probe refusals of the face check: stable codes and the user-facing retake messages.

Kept apart so that :mod:`images` and :mod:`detection` can both raise them without importing
each other. No Django imports.
"""

from __future__ import annotations

REJECTION_CODES: dict[str, str] = {
    "empty": "The photo is empty. Please take the photo again.",
    "not_an_image": ("This file is not a photo we can read. Please take a new photo or upload a JPEG or PNG picture."),
    "unreadable": (
        "The photo could not be read completely; it may be damaged or cut off. "
        "Please retake the photo and upload it again."
    ),
    "too_large": (
        "The photo file is larger than 10 MB. Please retake it at a lower resolution or upload a smaller file."
    ),
    "too_many_pixels": ("The photo has far too many pixels. Please retake it with the normal camera settings."),
    "animated": ("Animated pictures cannot be used. Please retake a single still photo of your face."),
    "no_face": (
        "No face was found in the photo. Please retake it facing the camera, with your whole face visible and well lit."
    ),
    "multiple_faces": (
        "More than one face is visible. Please retake the photo with only your own face in the picture."
    ),
    "face_too_small": (
        "Your face is too small in the photo. Please retake it closer to the camera so that "
        "your face fills more of the picture."
    ),
    "too_dark": ("The photo is too dark. Please retake it in better light, facing a window or a lamp."),
    "too_blurry": (
        "The photo is too blurry. Please hold the camera still, make sure it is in focus, and retake the photo."
    ),
    "too_few_frames": (
        "The live capture was too short. Please retake it and keep your face in front of the camera until it finishes."
    ),
    "too_many_frames": "The live capture was too long. Please retake it.",
    "inconsistent_frames": (
        "The live capture frames do not belong together. Please retake the live capture with the camera."
    ),
    "replayed_still": (
        "The live capture looks like one still picture repeated. Please retake it live with "
        "the camera, looking at the screen; saved photos cannot be used."
    ),
    "no_motion": (
        "No natural movement was seen during the live capture. Please retake it and move "
        "your head slightly or blink while the camera records."
    ),
}


class ProbeRejected(Exception):
    """A probe (or burst) that must not be decided on; the user is asked to retake it.

    ``code`` is one of :data:`REJECTION_CODES` (stable, safe to store and audit);
    ``message`` is a user-facing sentence. Picklable (Celery result backends).
    """

    #: Which of several photos failed (set by enrollment, which checks them in turn).
    image_index: int = 0

    def __init__(self, code: str, message: str | None = None) -> None:
        if code not in REJECTION_CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        self.code: str = code
        self.message: str = message if message is not None else REJECTION_CODES[code]
        super().__init__(code, self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ProbeRejected(code={self.code!r})"
