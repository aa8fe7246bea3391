"""Prompted liveness for a face capture (issue 11). No Django imports in this module.

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

Checks in order (each refusal is a stable code): every frame one face (``several_faces`` for a
second face, else the frame's ``ProbeRejected`` code); continuity (``not_continuous``: the face
box jumps between consecutive frames, i.e. a cut or a splice); the actions in order
(``challenge_not_done``); ``flat_surface`` (one 2-D homography explains the 68 landmarks of
every frame from the first: a photo or screen moved, scaled, rotated or tilted in the hand);
the same identity throughout (``identity_changed``); then the match (``no_match``).
Every frame is detected (no cheaper tracker yet).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lookups.faces.detection import FaceSample, _eye_metrics, _landmark_array, detect_single_face
from lookups.faces.errors import ProbeRejected
from lookups.faces.matching import MODEL_VERSION, build_template, face_distance

ACTIONS: tuple[str, ...] = ("blink", "open_mouth", "turn_left", "turn_right")

CAPTURE_CODES: tuple[str, ...] = (
    "challenge_not_done",
    "not_continuous",
    "flat_surface",
    "identity_changed",
    "no_match",
    "bad_challenge",
    "several_faces",
)

#: Largest residual (RMS landmark error after the best homography from frame 0, in units of
#: inter-ocular distance) over the capture must exceed this, else ``flat_surface``.
#: Calibrated on bench/liveness_attacks.py tuning set: single-photo attacks 0.020-0.041,
#: live clips 0.108-0.124.
MIN_PLANAR_RESIDUAL = 0.060
#: Median landmark error (in IOD) of the best homography between consecutive frames above this
#: is a cut (another photo): a blink or open mouth moves a minority of the 68 points, so the
#: median stays low for a real face. Tuning set: live 0.040-0.071, slideshows 0.080-0.110
#: (set above the live maximum: a slideshow of well-aligned photos can pass this rule).
MAX_CUT_MEDIAN = 0.100
#: Face-box centre move between consecutive frames (in box widths) above this is a jump.
MAX_BOX_JUMP = 0.5
#: Face-box size ratio between consecutive frames above this is a jump.
MAX_BOX_SCALE_JUMP = 1.4

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


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography (normalised DLT) mapping ``src`` (N x 2) onto ``dst``."""

    def norm(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu = p.mean(axis=0)
        sc = np.sqrt(2.0) / (np.mean(np.linalg.norm(p - mu, axis=1)) or 1.0)
        t = np.array([[sc, 0.0, -sc * mu[0]], [0.0, sc, -sc * mu[1]], [0.0, 0.0, 1.0]])
        return np.c_[p, np.ones(len(p))] @ t.T, t

    ps, ts = norm(src)
    pd, td = norm(dst)
    rows = []
    for (x, y, _), (u, v, _) in zip(ps, pd, strict=True):
        rows.append([-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u])
        rows.append([0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    h = vt[-1].reshape(3, 3)
    return np.linalg.inv(td) @ h @ ts


def _planar_errors(src: np.ndarray, dst: np.ndarray, iod: float) -> np.ndarray:
    """Per-point error (in inter-ocular distances) of the best homography mapping src onto dst."""
    h = _homography(src, dst)
    p = np.c_[src, np.ones(len(src))] @ h.T
    w = np.where(np.abs(p[:, 2:]) < 1e-12, 1e-12, p[:, 2:])
    return np.linalg.norm(p[:, :2] / w - dst, axis=1) / max(iod, 1.0)


def planar_residual(src: np.ndarray, dst: np.ndarray, iod: float) -> float:
    """RMS error (in inter-ocular distances) of the best homography mapping src onto dst."""
    return float(np.sqrt(np.mean(_planar_errors(src, dst, iod) ** 2)))


def capture_planarity(samples: Sequence[FaceSample]) -> float:
    """Largest planar residual of any frame against the first (see MIN_PLANAR_RESIDUAL)."""
    lms = [_landmark_array(s) for s in samples]
    iod = float(_eye_metrics(samples[0])[0])
    return max((planar_residual(lms[0], lm, iod) for lm in lms[1:]), default=0.0)


def _continuity_break(samples: Sequence[FaceSample]) -> int | None:
    """Index of the first frame whose face box jumps from the previous one, or whose landmarks
    no single homography maps from the previous frame's for most points (a cut), else None."""
    for i in range(1, len(samples)):
        t0, r0, b0, l0 = samples[i - 1].box
        t1, r1, b1, l1 = samples[i].box
        w0, w1 = max(r0 - l0, 1), max(r1 - l1, 1)
        move = np.hypot((l1 + r1 - l0 - r0) / 2.0, (t1 + b1 - t0 - b0) / 2.0) / w0
        if move > MAX_BOX_JUMP or max(w0, w1) / min(w0, w1) > MAX_BOX_SCALE_JUMP:
            return i
        iod = float(_eye_metrics(samples[i - 1])[0])
        errors = _planar_errors(_landmark_array(samples[i - 1]), _landmark_array(samples[i]), iod)
        if float(np.median(errors)) > MAX_CUT_MEDIAN:
            return i
    return None


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
    except ProbeRejected as exc:
        return refuse("several_faces" if exc.code == "multiple_faces" else exc.code, len(samples))
    return decide_samples(samples, challenge=challenge, template=template, threshold=threshold)


def decide_samples(
    samples: Sequence[FaceSample],
    *,
    challenge: Sequence[str],
    template: np.ndarray | None,
    threshold: float,
) -> CaptureDecision:
    """The decision part of :func:`check_capture` on already detected frames (one face each).
    Split out so a benchmark can try several challenges on one capture without re-detecting."""

    def refuse(code: str, used: int = 0, distance: float | None = None) -> CaptureDecision:
        return CaptureDecision(False, code, distance, used, threshold, MODEL_VERSION)

    if not challenge or any(a not in ACTIONS for a in challenge):
        return refuse("bad_challenge")
    try:
        metrics = [_eye_metrics(s) for s in samples]
        mar = np.asarray([_mouth_ratio(s) for s in samples])
    except ProbeRejected as exc:
        return refuse(exc.code, len(samples))
    if len(samples) < 5:
        return refuse("challenge_not_done", len(samples))
    if _continuity_break(samples) is not None:
        return refuse("not_continuous", len(samples))
    ear = np.asarray([m[1] for m in metrics])
    yaw = np.asarray([m[2] for m in metrics])
    pos = 0
    for action in challenge:
        end = _action_end(action, ear, mar, yaw, pos)
        if end is None:
            return refuse("challenge_not_done", len(samples))
        pos = end + 1
    if capture_planarity(samples) < MIN_PLANAR_RESIDUAL:
        return refuse("flat_surface", len(samples))
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
