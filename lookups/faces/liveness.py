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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lookups.faces.detection import FaceSample, _eye_metrics, _landmark_array, detect_single_face
from lookups.faces.errors import ProbeRejected
from lookups.faces.images import MIN_FACE_HEIGHT_PX, MIN_SHARPNESS
from lookups.faces.matching import MODEL_VERSION, build_template, compare_embedding, face_distance
from lookups.faces.tracking import TrackBreak, embed_face, track_faces

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
#: Tuning attacks (person_02-04, bench/liveness_attacks.py): 0.023-0.048; live 3.5 s windows
#: of the tuning clips (00, 03, 06, 10): 0.044 and up (talking with little head motion).
MIN_PLANAR_RESIDUAL = 0.040
#: Median landmark error (in IOD) of the best homography between consecutive frames above this
#: is a cut (another photo): a blink or open mouth moves a minority of the 68 points, so the
#: median stays low for a real face. Live clips: at most 0.077; slideshows 0.080-0.110.
MAX_CUT_MEDIAN = 0.100
#: Face-box centre move between consecutive frames (in box widths) above this is a jump. Real
#: motion at 10 fps reaches 0.67 (clip_12); the tracker's search region (2.2 box widths) is the
#: tighter bound in ``check_capture``.
MAX_BOX_JUMP = 1.0
#: Face-box size ratio between consecutive frames above this is a jump.
MAX_BOX_SCALE_JUMP = 1.4

#: Each embedded frame must stay this close to the mean of the embedded frames (same person
#: throughout). Live windows: per-frame spread up to 0.40 over all frames; a splice of two
#: people (distance ~0.8) puts the minority frames ~0.48 from the mean.
MAX_IDENTITY_SPREAD = 0.42
#: Rectified eye aspect ratio must fall below this fraction of the person's open-eye baseline,
#: then recover above BLINK_RECOVER of it. Live blinks: 0.30-0.50 of baseline; photo attacks
#: (landmark noise only): never below 0.64.
BLINK_DIP = 0.55
BLINK_RECOVER = 0.75
#: Rectified mouth aspect ratio rise above the closed-mouth baseline, and the least opening.
#: Live "open the mouth": rises 0.30-0.50; photo attacks vary by at most 0.06.
MOUTH_RISE = 0.18
MOUTH_MIN_OPEN = 0.25
#: Turn parallax (nose off the plane of contour/brows/eyes, in IOD) from the start pose, held
#: for TURN_HOLD consecutive frames. Live turns: 0.10-0.20; tilted photos: at most 0.051.
TURN_DELTA = 0.08
TURN_HOLD = 2
#: Frames embedded per capture (each costs about one single-photo check's encoder run).
BEST_FRAMES = 3
#: Fewer frames than this cannot show an action (the page sends 30-40).
MIN_FRAMES = 5


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
    x, y, u, v = ps[:, 0], ps[:, 1], pd[:, 0], pd[:, 1]
    zero, one = np.zeros_like(x), np.ones_like(x)
    a = np.empty((2 * len(x), 9))
    a[0::2] = np.stack([-x, -y, -one, zero, zero, zero, u * x, u * y, u], axis=1)
    a[1::2] = np.stack([zero, zero, zero, -x, -y, -one, v * x, v * y, v], axis=1)
    # the null vector of A: the eigenvector of the 9 x 9 A^T A with the smallest eigenvalue
    _, vecs = np.linalg.eigh(a.T @ a)
    vt = vecs.T[::-1]
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


def _pts(sample: FaceSample, *names: str) -> np.ndarray:
    lm = sample.landmarks or {}
    out = [p for n in names for p in lm.get(n, [])]
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    w = np.where(np.abs(p[:, 2:]) < 1e-12, 1e-12, p[:, 2:])
    return p[:, :2] / w


def _ear6(e: np.ndarray) -> float:
    v = np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])
    h = 2.0 * np.linalg.norm(e[0] - e[3])
    return float(v / h) if h > 0 else 0.0


def action_signals(samples: Sequence[FaceSample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (eye aspect ratio, mouth aspect ratio, turn parallax), all measured after
    mapping the frame onto the first one with the homography of its rigid points, so that a
    flat photo moved, tilted or warped in the hand shows no change at all.

    - EAR / MAR: eye and lip points mapped by the homography of the face contour, eyebrows and
      nose (frame i -> frame 0), then the usual ratios: a photo tilted about the horizontal
      axis squashes the eyes and the contour alike, so its mapped EAR does not dip.
    - turn parallax: the nose (bridge + tip) is mapped by the homography of the contour,
      eyebrows and eyes; its offset from the first frame's nose along the eye axis, in
      inter-ocular distances. A real head turn moves the nose off the plane of the other
      points (it stands out of the face); a photo cannot. ``turn_left`` is a positive change
      (same sign convention as the yaw proxy of ``lookups.faces.detection._eye_metrics``).
    """
    ref = samples[0]
    ref_rigid = _pts(ref, "chin", "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip")
    ref_plane = _pts(ref, "chin", "left_eyebrow", "right_eyebrow", "left_eye", "right_eye")
    ref_nose = _pts(ref, "nose_bridge", "nose_tip").mean(axis=0)
    lc, rc = _pts(ref, "left_eye").mean(axis=0), _pts(ref, "right_eye").mean(axis=0)
    iod = float(np.linalg.norm(rc - lc)) or 1.0
    axis = (rc - lc) / iod
    ear, mar, par = [], [], []
    for s in samples:
        h = _homography(_pts(s, "chin", "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip"), ref_rigid)
        le, re_ = _apply(h, _pts(s, "left_eye")), _apply(h, _pts(s, "right_eye"))
        ear.append((_ear6(le) + _ear6(re_)) / 2.0)
        top, bottom = _apply(h, _pts(s, "top_lip")), _apply(h, _pts(s, "bottom_lip"))
        width = float(np.linalg.norm(top[0] - top[6])) or 1.0
        mar.append(float(np.mean(np.linalg.norm(top[8:11] - bottom[8:11][::-1], axis=1))) / width)
        hp = _homography(_pts(s, "chin", "left_eyebrow", "right_eyebrow", "left_eye", "right_eye"), ref_plane)
        nose = _apply(hp, _pts(s, "nose_bridge", "nose_tip")).mean(axis=0)
        par.append(float(np.dot(nose - ref_nose, axis)) / iod)
    return np.asarray(ear), np.asarray(mar), np.asarray(par)


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


def _action_end(action: str, ear: np.ndarray, mar: np.ndarray, turn: np.ndarray, start: int) -> int | None:
    """Index of the frame where ``action`` completes at or after ``start``, else None.

    ``ear``/``mar``/``turn`` come from :func:`action_signals` (rectified onto the first frame).
    Baselines are the person's own, over the whole capture: open eyes = the 80th percentile of
    the eye aspect ratio, closed mouth = the 20th percentile of the mouth aspect ratio, start
    pose = the median turn parallax of the first three frames.
    """
    n = len(ear)
    if action == "blink":
        base = float(np.percentile(ear, 80))
        for i in range(start, n):
            if ear[i] < BLINK_DIP * base:
                for j in range(i + 1, n):
                    if ear[j] > BLINK_RECOVER * base:
                        return j
                return None
        return None
    if action == "open_mouth":
        base = float(np.percentile(mar, 20))
        for i in range(start, n):
            if mar[i] > base + MOUTH_RISE and mar[i] > MOUTH_MIN_OPEN:
                return i
        return None
    sign = 1.0 if action == "turn_left" else -1.0
    base = float(np.median(turn[:3]))
    held = 0
    for i in range(start, n):
        held = held + 1 if sign * (turn[i] - base) > TURN_DELTA else 0
        if held >= TURN_HOLD:
            return i
    return None


def _pick_frames(samples: Sequence[FaceSample], ear: np.ndarray, turn: np.ndarray) -> list[int]:
    """The frames to embed: the capture split into BEST_FRAMES equal parts in time, and in each
    the best frame (sharp, eyes open, close to the start pose). Spread in time so that a
    splice of two people shows in the identity check."""
    n = len(samples)
    k = min(BEST_FRAMES, n)
    open_eyes = float(np.percentile(ear, 80)) or 1.0
    picked = []
    for part in np.array_split(np.arange(n), k):

        def score(i: int) -> float:
            eyes = min(1.0, float(ear[i]) / open_eyes)
            return samples[i].sharpness * eyes / (1.0 + 10.0 * abs(float(turn[i] - turn[0])))

        picked.append(max((int(i) for i in part), key=score))
    return picked


def check_capture(
    frames: Sequence[np.ndarray],
    *,
    challenge: Sequence[str],
    template: np.ndarray | None,
    threshold: float,
    cohort: np.ndarray | None = None,
) -> CaptureDecision:
    """Decide one capture (see module docstring). Never raises for bad frames: refusals come
    back as ``CaptureDecision(accepted=False, code=...)``.

    The face is tracked (:func:`lookups.faces.tracking.track_faces`: one whole-frame detection,
    then a small search around the last box), and only the chosen frames are embedded."""

    def refuse(code: str, used: int = 0, distance: float | None = None) -> CaptureDecision:
        return CaptureDecision(False, code, distance, used, threshold, MODEL_VERSION)

    if not challenge or any(a not in ACTIONS for a in challenge):
        return refuse("bad_challenge")
    try:
        tracked = track_faces(frames)
    except TrackBreak as exc:
        return refuse(exc.code, exc.index)

    def embed(i: int) -> np.ndarray:
        return embed_face(frames[i], tracked.samples[i].box)

    return decide_samples(
        tracked.samples, challenge=challenge, template=template, threshold=threshold, embed=embed, cohort=cohort
    )


def decide_samples(
    samples: Sequence[FaceSample],
    *,
    challenge: Sequence[str],
    template: np.ndarray | None,
    threshold: float,
    embed: Callable[[int], np.ndarray] | None = None,
    cohort: np.ndarray | None = None,
) -> CaptureDecision:
    """The decision part of :func:`check_capture` on already located frames (one face each,
    with landmarks). ``embed(i)`` returns frame i's embedding (default: ``samples[i].embedding``,
    for samples from ``detect_single_face``); it is called only for the chosen frames. Split out
    so a benchmark can try several challenges on one capture without re-detecting."""

    def refuse(code: str, used: int = 0, distance: float | None = None) -> CaptureDecision:
        return CaptureDecision(False, code, distance, used, threshold, MODEL_VERSION)

    if not challenge or any(a not in ACTIONS for a in challenge):
        return refuse("bad_challenge")
    if len(samples) < MIN_FRAMES:
        return refuse("challenge_not_done", len(samples))
    try:
        for s in samples:
            _eye_metrics(s)
            _mouth_ratio(s)
    except ProbeRejected as exc:
        return refuse(exc.code, len(samples))
    if _continuity_break(samples) is not None:
        return refuse("not_continuous", len(samples))
    if capture_planarity(samples) < MIN_PLANAR_RESIDUAL:
        return refuse("flat_surface", len(samples))
    ear, mar, turn = action_signals(samples)
    pos = 0
    for action in challenge:
        end = _action_end(action, ear, mar, turn, pos)
        if end is None:
            return refuse("challenge_not_done", len(samples))
        pos = end + 1
    picked = _pick_frames(samples, ear, turn)
    for i in picked:
        s = samples[i]
        if s.face_height_px < MIN_FACE_HEIGHT_PX:
            return refuse("face_too_small", len(picked))
        if s.sharpness < MIN_SHARPNESS:
            return refuse("too_blurry", len(picked))
    get = embed if embed is not None else (lambda i: np.asarray(samples[i].embedding, dtype=np.float64))
    try:
        embeddings = np.stack([get(i) for i in picked])
    except ProbeRejected as exc:
        return refuse(exc.code, len(picked))
    mean = embeddings.mean(axis=0)
    if max(face_distance(mean, e) for e in embeddings) > MAX_IDENTITY_SPREAD:
        return refuse("identity_changed", len(picked))
    if template is None:
        return CaptureDecision(True, None, None, len(picked), threshold, MODEL_VERSION)
    # One match decision per capture: the mean embedding of the chosen frames, with the cohort
    # rule of lookups.faces.matching.decide (``cohort``: the other enrolled templates).
    verdict = compare_embedding(template, mean, threshold=threshold, cohort=cohort)
    distance = verdict.distance
    if not verdict.matched:
        return refuse("no_match", len(picked), distance)
    return CaptureDecision(True, None, distance, len(picked), threshold, MODEL_VERSION)


def build_template_from_images(images: Sequence[np.ndarray]) -> np.ndarray:
    """Template (mean embedding) from enrollment images, one face each."""
    return build_template([detect_single_face(img) for img in images])
