"""Face tracking through a capture (issue 11). No Django imports in this module.

:func:`track_faces` detects the face once, on the first frame (HOG on the frame scaled to
``SCAN_LONG_SIDE``; whole frame at full size, then upsampled, only when that finds nothing).
On each next frame the 68 landmarks are *predicted* in the box carried over from the previous
frame (dlib's shape predictor, 2-3 ms on a new frame: its 99 MB of trees are read from memory;
no detection): the box follows the median shift of their rigid points (brows, eyes, nose), and
when the face moved more than ``REFINE_SHIFT`` box widths the landmarks are predicted again in
the moved box (up to ``REPREDICT_TRIES`` times). Every ``HOG_CHECK_EVERY`` frames, and after a
fast move the re-prediction did not settle, a HOG detection (on grey) in a small crop around
the box checks that a face really is there and where the landmarks say (else
``not_continuous``; a second face in the crop is ``several_faces``), and re-anchors the box.
Every ``FULL_SCAN_EVERY`` frames the whole frame is scanned again (at ``SCAN_LONG_SIDE``) so a
second face that enters the picture is seen. Nothing is embedded here: the caller embeds only the frames it chooses
(:func:`embed_face`). Brightness is measured on the first frame only (its quality gate): the
caller measures the frame it embeds (35 measures cost ~3 % of a capture and nothing read them).

Refusals (``TrackBreak.code``): ``no_face`` (nothing on the first frame), ``several_faces`` (two
faces in the first frame, in a check crop or in a periodic scan), ``not_continuous`` (the face
is not found where the landmarks put it: a jump or a cut), plus the quality-gate codes of the
first frame (``face_too_small``, ``too_dark``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lookups.faces.detection import FaceSample, _fr
from lookups.faces.errors import ProbeRejected
from lookups.faces.images import MIN_BRIGHTNESS, MIN_FACE_HEIGHT_PX, _clip_box
from lookups.faces.matching import TEMPLATE_DIM

#: The HOG check crop is the box enlarged by this factor (about its centre); after a fast
#: move (the landmarks moved the box by more than REFINE_SHIFT) by MOTION_SEARCH_SCALE.
SEARCH_SCALE = 1.6
MOTION_SEARCH_SCALE = 2.2
#: The check crop is scaled so the face is about this many pixels high (HOG's window is 80).
TRACK_FACE_PX = 84
#: HOG check of the tracked box every this many frames (1 s at 10 fps; the landmarks are checked
#: against the pixels by the liveness module's continuity tests on every frame in between).
HOG_CHECK_EVERY = 10
#: Whole-frame rescan every this many frames, for a second face (a scan costs 2 crop checks).
FULL_SCAN_EVERY = 20
#: Whole-frame scans run on the frame scaled to this long side (HOG then sees faces from
#: 80 / scale px, i.e. faces from 31 % of the frame's long side).
SCAN_LONG_SIDE = 256
#: Least overlap (intersection over union) of the HOG box with the landmark-tracked box.
MIN_CHECK_IOU = 0.35
#: When the landmarks move the box by more than this (box widths) from the box they were
#: predicted in, the face moved fast: the shape predictor lags behind it (its landmarks
#: partly follow the box), so HOG finds the face in a wide crop and the landmarks are
#: predicted again in the found box.
REFINE_SHIFT = 0.05
#: ... and the same when the new landmarks fit the previous frame's badly (median affine error
#: in inter-ocular distances; live frames well tracked: mostly below 0.03).
REFIT_ERROR = 0.045
#: Before that HOG check, the landmarks are predicted again (at most this many times) in the box
#: they moved to: usually the predictor then settles on the face and no detection is needed.
REPREDICT_TRIES = 2

# 68-point indices (iBUG order) of the points that do not move with the jaw or the eyelids
# (an odd count: _carry_box takes the middle one as the median; tests/faces/test_tracking.py).
_RIGID = np.r_[17:27, 27:36, 36:37, 39:40, 42:43, 45:46]

Box = tuple[int, int, int, int]  # (top, right, bottom, left)


class TrackBreak(Exception):
    def __init__(self, code: str, index: int) -> None:
        self.code = code
        self.index = index
        super().__init__(code, index)


@dataclass(frozen=True)
class TrackedCapture:
    samples: list[FaceSample]  # one per frame; ``embedding`` is a zero placeholder, ``sharpness`` NaN,
    # ``brightness`` NaN after the first frame
    full_scans: int
    crop_detections: int


_PLACEHOLDER = np.zeros(TEMPLATE_DIM)
_PLACEHOLDER.setflags(write=False)


def _as_dict(p: np.ndarray) -> dict[str, list[tuple[int, int]]]:
    """68 points -> ``face_recognition.face_landmarks`` layout (same keys and order)."""
    q = [(x, y) for x, y in p.astype(np.int64).tolist()]  # int() of each point, in one cast
    return {
        "chin": q[0:17],
        "left_eyebrow": q[17:22],
        "right_eyebrow": q[22:27],
        "nose_bridge": q[27:31],
        "nose_tip": q[31:36],
        "left_eye": q[36:42],
        "right_eye": q[42:48],
        "top_lip": q[48:55] + [q[64], q[63], q[62], q[61], q[60]],
        "bottom_lip": q[54:60] + [q[48], q[60], q[67], q[66], q[65], q[64]],
    }


def _predict(image: np.ndarray, box: Box) -> np.ndarray:
    import dlib

    top, right, bottom, left = box
    shape = _fr().api.pose_predictor_68_point(image, dlib.rectangle(left, top, right, bottom))
    # one flat iterator: a third cheaper than a list of 68 tuples (the same integers)
    return np.fromiter((v for pt in shape.parts() for v in (pt.x, pt.y)), np.float64, 136).reshape(68, 2)


def _carry_box(ref_box: Box, ref_pts: np.ndarray, pts: np.ndarray, height: int, width: int) -> Box:
    """``ref_box`` (the last detector box) moved as the rigid landmarks moved from ref_pts to
    pts. Its size stays the detector's: the shape predictor's own scale error would otherwise
    feed back from frame to frame (the box shrinks or grows with it)."""
    d = pts[_RIGID] - ref_pts[_RIGID]
    d.sort(axis=0)
    dx, dy = d[len(_RIGID) // 2]  # the median (an odd count of points; np.median costs 10x more)
    top, right, bottom, left = ref_box
    box = (top + dy, right + dx, bottom + dy, left + dx)
    return _clip_box(tuple(round(v) for v in box), height, width)


def _iou(a: Box, b: Box) -> float:
    h = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0, min(a[1], b[1]) - max(a[3], b[3]))
    inter = h * w
    area = (a[2] - a[0]) * (a[1] - a[3]) + (b[2] - b[0]) * (b[1] - b[3]) - inter
    return inter / area if area > 0 else 0.0


def _hog(image: np.ndarray, scale: float, upsample: int = 0) -> list[Box]:
    """HOG boxes on ``image`` scaled by ``scale``, in the image's own pixels.

    On the grey image: dlib's HOG takes the strongest gradient of the three channels, which on
    a face in front of a camera is nearly always the luma's; grey costs ~20 % less HOG time and
    half the resize (same boxes on the live clips)."""
    height, width = image.shape[:2]
    small = Image.fromarray(image).convert("L")
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = small.resize(size, Image.Resampling.BILINEAR)
    found = _fr().face_locations(np.asarray(small), number_of_times_to_upsample=upsample, model="hog")
    return [_clip_box(tuple(round(v / scale) for v in b), height, width) for b in found]


def _scan(image: np.ndarray) -> list[Box]:
    """Whole-frame scan at SCAN_LONG_SIDE (upsample 0)."""
    return _hog(image, min(1.0, SCAN_LONG_SIDE / max(image.shape[:2])))


def _search(image: np.ndarray, last: Box, enlarge: float = SEARCH_SCALE) -> list[Box]:
    """Face boxes (full-frame pixels) found in the enlarged region around ``last``."""
    height, width = image.shape[:2]
    top, right, bottom, left = last
    cy, cx = (top + bottom) / 2.0, (left + right) / 2.0
    half = enlarge * max(bottom - top, right - left) / 2.0
    y0, y1 = max(0, int(cy - half)), min(height, int(cy + half))
    x0, x1 = max(0, int(cx - half)), min(width, int(cx + half))
    if y1 - y0 < 8 or x1 - x0 < 8:
        return []
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    scale = min(1.0, TRACK_FACE_PX / max(bottom - top, 1))
    boxes = _hog(crop, scale) or _hog(crop, scale, upsample=1)
    return [_clip_box((t + y0, r + x0, b + y0, lft + x0), height, width) for t, r, b, lft in boxes]


def _first_box(image: np.ndarray) -> tuple[Box, float]:
    """The one face of the first frame and its brightness, through the quality gate."""
    height, width = image.shape[:2]
    boxes = _scan(image)
    if not boxes:
        boxes = _hog(image, 1.0) or _hog(image, 1.0, upsample=1)
    if not boxes:
        raise TrackBreak("no_face", 0)
    if len(boxes) > 1:
        raise TrackBreak("several_faces", 0)
    box = _clip_box(boxes[0], height, width)
    if box[2] - box[0] < MIN_FACE_HEIGHT_PX:
        raise TrackBreak("face_too_small", 0)
    brightness = _brightness(image, box)
    if brightness < MIN_BRIGHTNESS:
        raise TrackBreak("too_dark", 0)
    return box, brightness


def _brightness(image: np.ndarray, box: Box) -> float:
    """Mean luma of the face box on every 3rd pixel (the gate's measure, cheaper)."""
    top, right, bottom, left = box
    crop = image[top:bottom:3, left:right:3]
    if crop.size == 0:
        return 0.0
    r, g, b = crop.reshape(-1, 3).mean(axis=0)  # luma is linear: weigh the channel means
    return float(0.299 * r + 0.587 * g + 0.114 * b)


def _check(image: np.ndarray, box: Box, i: int, *, scan: bool, strict: bool = True) -> Box | None:
    """HOG check of the tracked ``box`` on frame i: the found box (re-anchor), or None when a
    whole-frame scan at reduced size did not see the face (the crop check then runs).
    ``strict``: the found box must overlap ``box`` (periodic checks); else (the landmarks say
    the face moved fast) any one face in the wider crop around ``box`` is taken."""
    boxes = _scan(image) if scan else _search(image, box, SEARCH_SCALE if strict else MOTION_SEARCH_SCALE)
    if scan and len(boxes) > 1:
        raise TrackBreak("several_faces", i)
    near = [b for b in boxes if not strict or _iou(b, box) >= MIN_CHECK_IOU]
    if scan:
        return near[0] if near else None
    if len(boxes) > 1:
        raise TrackBreak("several_faces", i)
    if not near:
        raise TrackBreak("not_continuous", i)
    return near[0]


def _fit_error(prev: np.ndarray, pts: np.ndarray) -> float:
    """Median error (in inter-ocular distances) of the best affine map of the previous frame's
    68 landmarks onto these: high when the predictor fitted a face that moved out of its box."""
    a = np.empty((len(prev), 3))
    a[:, :2] = prev
    a[:, 2] = 1.0
    at = a.T
    # the normal equations (3 x 3): the same least-squares fit as lstsq at a fifth of its cost
    try:
        coef = np.linalg.solve(at @ a, at @ pts)
    except np.linalg.LinAlgError:  # degenerate points (all on a line): lstsq copes
        coef, *_ = np.linalg.lstsq(a, pts, rcond=None)
    d = prev[36:42].sum(axis=0) / 6.0 - prev[42:48].sum(axis=0) / 6.0
    iod = float(np.hypot(d[0], d[1])) or 1.0
    r = a @ coef - pts
    err = np.sqrt((r * r).sum(axis=1))
    err.sort()  # the median by hand: np.median's checks cost more than this whole fit
    half = len(err) // 2
    median = err[half] if len(err) % 2 else (err[half - 1] + err[half]) / 2.0
    return float(median) / iod


def _shift(a: Box, b: Box) -> float:
    """Centre distance of two boxes in widths of ``a``."""
    return float(np.hypot(b[0] + b[2] - a[0] - a[2], b[1] + b[3] - a[1] - a[3])) / (2.0 * max(a[1] - a[3], 1))


def track_faces(frames: Sequence[np.ndarray]) -> TrackedCapture:
    """Track the one face through ``frames`` (see module docstring). Raises :class:`TrackBreak`."""
    samples: list[FaceSample] = []
    full_scans = crops = 0
    ref_box: Box | None = None
    ref_pts = pts = np.zeros((68, 2))
    for i, image in enumerate(frames):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise TrackBreak("unreadable", i)
        height, width = image.shape[:2]
        if ref_box is None:
            full_scans += 1
            box, brightness = _first_box(image)
            ref_box = box
            pts = ref_pts = _predict(image, box)
        else:
            brightness = float("nan")  # measured on demand (liveness: the embedded frame)
            used = _carry_box(ref_box, ref_pts, pts, height, width)
            prev, pts = pts, _predict(image, used)
            box = _carry_box(ref_box, ref_pts, pts, height, width)
            for _ in range(REPREDICT_TRIES):
                if _shift(used, box) <= REFINE_SHIFT:
                    break
                # a fast move: the predictor lagged behind the face in the carried box; predict
                # again in the box its landmarks moved to (1-2 ms, where a HOG check costs 5-12)
                used, pts = box, _predict(image, box)
                box = _carry_box(ref_box, ref_pts, pts, height, width)
            moved = _shift(used, box) > REFINE_SHIFT or _fit_error(prev, pts) > REFIT_ERROR
            found = None
            if i % FULL_SCAN_EVERY == 0:
                full_scans += 1
                found = _check(image, box, i, scan=True)
            if found is None and (moved or i % HOG_CHECK_EVERY == 0):
                crops += 1
                found = _check(image, box, i, scan=False, strict=not moved)
            if found is not None:  # re-anchor the box on the detector's
                if _shift(used, found) > REFINE_SHIFT:
                    pts = _predict(image, found)
                box = ref_box = found
                ref_pts = pts
        samples.append(
            FaceSample(
                embedding=_PLACEHOLDER,
                box=box,
                face_height_px=box[2] - box[0],
                brightness=brightness,
                sharpness=float("nan"),  # measured on demand (liveness: only frames it may embed)
                landmarks=_as_dict(pts),
                image_size=(width, height),
            )
        )
    return TrackedCapture(samples, full_scans, crops)


def embed_face(image: np.ndarray, box: Box) -> np.ndarray:
    """128-d embedding of the face at ``box`` (same setting as ``detect_single_face``)."""
    enc = _fr().face_encodings(image, known_face_locations=[box], num_jitters=1, model="small")
    if len(enc) != 1:  # pragma: no cover - the encoder returns one per location
        raise ProbeRejected("no_face")
    vec = np.asarray(enc[0], dtype=np.float64).reshape(TEMPLATE_DIM)
    if not np.all(np.isfinite(vec)):  # pragma: no cover - defensive
        raise ProbeRejected("unreadable")
    return vec


def embed_faces(images: Sequence[np.ndarray], boxes: Sequence[Box]) -> np.ndarray:
    """Embeddings of the faces at ``boxes`` (one per image) in one encoder batch: the same
    5-point alignment and 150 px chip as ``face_encodings(..., known_face_locations=[box])``
    (``detect_single_face``), so the vectors match a one-by-one encoding."""
    import dlib

    api = _fr().api
    chips = []
    for image, (top, right, bottom, left) in zip(images, boxes, strict=True):
        shape = api.pose_predictor_5_point(image, dlib.rectangle(left, top, right, bottom))
        chips.append(dlib.get_face_chip(image, shape, size=150, padding=0.25))
    out = np.asarray(api.face_encoder.compute_face_descriptor(chips), dtype=np.float64).reshape(
        len(chips), TEMPLATE_DIM
    )
    if not np.all(np.isfinite(out)):  # pragma: no cover - defensive
        raise ProbeRejected("unreadable")
    return out
