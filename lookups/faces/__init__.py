"""Face check core with prompted liveness (issue 11). No Django imports in this package.

Stable API (the lookup flow builds on these names; keep them):

- ``ACTIONS = ("blink", "open_mouth", "turn_left", "turn_right")``
- ``choose_challenge(rng=secrets.SystemRandom()) -> tuple[str, str]``: two distinct actions,
  random order.
- ``check_capture(frames, *, challenge, template, threshold) -> CaptureDecision``: frames are
  RGB uint8 arrays in time order at ~10 fps. ``accepted`` is True only when every frame shows
  exactly one face, the actions happen in the requested order, the identity stays the same and
  (with a template) the mean embedding of the best frames is within ``threshold``.
- ``CaptureDecision``: accepted, code (one of ``CAPTURE_CODES`` or a ``ProbeRejected`` code
  such as ``no_face``/``low_quality``), distance, frames_used, threshold, model_version.
- ``build_template_from_images(images)``: template from enrollment images.

Status: first version. Every frame is detected (no tracking yet), and there is no
flat-surface (homography) test yet: ``flat_surface``/``not_continuous`` are reserved codes.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lookups.face_pipeline import (
    MODEL_VERSION,
    FaceSample,
    ProbeRejected,
    _eye_metrics,
    build_template,
    detect_single_face,
    face_distance,
)

ACTIONS: tuple[str, ...] = ("blink", "open_mouth", "turn_left", "turn_right")

CAPTURE_CODES: tuple[str, ...] = (
    "challenge_not_done",
    "not_continuous",
    "flat_surface",
    "identity_changed",
    "no_match",
    "bad_challenge",
)

#: Each frame's embedding must stay this close to the capture's mean (same person throughout).
MAX_IDENTITY_SPREAD = 0.35
#: Eye aspect ratio must fall below this fraction of the person's open-eye baseline, and recover.
BLINK_DIP = 0.70
BLINK_RECOVER = 0.85
#: Mouth aspect ratio rise (absolute) above the closed-mouth baseline.
MOUTH_RISE = 0.25
#: Yaw proxy change (inter-ocular distances) from the starting pose.
TURN_DELTA = 0.08
BEST_FRAMES = 5


@dataclass(frozen=True)
class CaptureDecision:
    accepted: bool
    code: str | None
    distance: float | None
    frames_used: int
    threshold: float
    model_version: str


def choose_challenge(rng: secrets.SystemRandom | None = None) -> tuple[str, str]:
    """Two distinct actions out of :data:`ACTIONS`, in random order."""
    rng = rng or secrets.SystemRandom()
    first, second = rng.sample(list(ACTIONS), 2)
    return first, second


def _mouth_ratio(sample: FaceSample) -> float:
    lm = sample.landmarks or {}
    top = np.asarray(lm.get("top_lip", []), dtype=np.float64)
    bottom = np.asarray(lm.get("bottom_lip", []), dtype=np.float64)
    if top.shape != (12, 2) or bottom.shape != (12, 2):
        raise ProbeRejected("no_face")
    width = float(np.linalg.norm(top[0] - top[6])) or 1.0
    # inner lip points: top_lip[8..10], bottom_lip[8..10] (face_recognition ordering)
    gap = float(np.mean(np.linalg.norm(top[8:11] - bottom[8:11][::-1], axis=1)))
    return gap / width


def _action_end(action: str, ear: np.ndarray, mar: np.ndarray, yaw: np.ndarray, start: int) -> int | None:
    """Index of the frame where ``action`` completes at or after ``start``, else None."""
    n = len(ear)
    if action == "blink":
        base = float(np.percentile(ear, 80))
        i = start
        while i < n:
            if ear[i] < BLINK_DIP * base:
                for j in range(i + 1, n):
                    if ear[j] > BLINK_RECOVER * base:
                        return j
                return None
            i += 1
        return None
    if action == "open_mouth":
        base = float(np.percentile(mar, 20))
        for i in range(start, n):
            if mar[i] > base + MOUTH_RISE:
                for j in range(i + 1, n):
                    if mar[j] < base + MOUTH_RISE / 2:
                        return j
                return None
        return None
    sign = 1.0 if action == "turn_left" else -1.0
    base = float(np.median(yaw[: max(3, n // 5)]))
    for i in range(start, n):
        if sign * (yaw[i] - base) > TURN_DELTA:
            return i
    return None


def check_capture(
    frames: Sequence[np.ndarray],
    *,
    challenge: Sequence[str],
    template: np.ndarray | None,
    threshold: float,
) -> CaptureDecision:
    """Decide one capture (see module docstring). Never raises for bad frames: refusals come
    back as ``CaptureDecision(accepted=False, code=...)``."""

    def refuse(code: str, used: int = 0, distance: float | None = None) -> CaptureDecision:
        return CaptureDecision(False, code, distance, used, threshold, MODEL_VERSION)

    if not challenge or any(a not in ACTIONS for a in challenge):
        return refuse("bad_challenge")
    samples: list[FaceSample] = []
    try:
        for frame in frames:
            samples.append(detect_single_face(frame))
        metrics = [_eye_metrics(s) for s in samples]
        mar = np.asarray([_mouth_ratio(s) for s in samples])
    except ProbeRejected as exc:
        return refuse(exc.code, len(samples))
    if len(samples) < 5:
        return refuse("challenge_not_done", len(samples))
    ear = np.asarray([m[1] for m in metrics])
    yaw = np.asarray([m[2] for m in metrics])
    pos = 0
    for action in challenge:
        end = _action_end(action, ear, mar, yaw, pos)
        if end is None:
            return refuse("challenge_not_done", len(samples))
        pos = end + 1
    embeddings = np.stack([s.embedding for s in samples])
    mean = embeddings.mean(axis=0)
    if max(face_distance(mean, e) for e in embeddings) > MAX_IDENTITY_SPREAD:
        return refuse("identity_changed", len(samples))
    best = sorted(range(len(samples)), key=lambda i: -samples[i].sharpness)[:BEST_FRAMES]
    probe = embeddings[best].mean(axis=0)
    if template is None:
        return CaptureDecision(True, None, None, len(best), threshold, MODEL_VERSION)
    distance = face_distance(template, probe)
    if distance > threshold:
        return refuse("no_match", len(best), distance)
    return CaptureDecision(True, None, distance, len(best), threshold, MODEL_VERSION)


def build_template_from_images(images: Sequence[np.ndarray]) -> np.ndarray:
    """Template (mean embedding) from enrollment images, one face each."""
    return build_template([detect_single_face(img) for img in images])
