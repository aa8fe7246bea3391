"""Face tracking through a capture (issue 11). No Django imports in this module.

:func:`track_faces` detects the face once on the first frame (whole frame, HOG upsample 0, then
1), then on each next frame searches only an enlarged region around the last box, downscaled so
the face is about ``TRACK_FACE_PX`` high (HOG at upsample 0 on a small crop: a few ms instead of
a whole-frame detection). The 68 landmarks are predicted in the found box on the full frame.
Every ``FULL_SCAN_EVERY`` frames the whole frame is scanned again (upsample 0) so a second face
that enters the picture is seen. Nothing is embedded here: the caller embeds only the frames it
chooses (:func:`embed_face`).

Refusals (``TrackBreak.code``): ``no_face`` (nothing on the first frame), ``several_faces`` (two
faces in the first frame, in the search region or in a periodic scan), ``not_continuous`` (the
face is not found near its last position: a jump or a cut), plus the quality-gate codes of the
first frame (``face_too_small``, ``too_dark``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lookups.faces.detection import FaceSample, _fr
from lookups.faces.errors import ProbeRejected
from lookups.faces.images import MIN_BRIGHTNESS, MIN_FACE_HEIGHT_PX, _clip_box, _face_brightness, _face_sharpness
from lookups.faces.matching import TEMPLATE_DIM

#: The search region is the last box enlarged by this factor (about its centre).
SEARCH_SCALE = 2.2
#: The search crop is scaled so the last face is about this many pixels high.
TRACK_FACE_PX = 110
#: Whole-frame rescan (upsample 0) every this many frames, for a second face.
FULL_SCAN_EVERY = 15


class TrackBreak(Exception):
    def __init__(self, code: str, index: int) -> None:
        self.code = code
        self.index = index
        super().__init__(code, index)


@dataclass(frozen=True)
class TrackedCapture:
    samples: list[FaceSample]  # one per frame; ``embedding`` is a zero placeholder
    full_scans: int
    crop_detections: int


_PLACEHOLDER = np.zeros(TEMPLATE_DIM)
_PLACEHOLDER.setflags(write=False)


def _landmarks(image: np.ndarray, box: tuple[int, int, int, int]) -> dict[str, list[tuple[int, int]]] | None:
    found = _fr().face_landmarks(image, face_locations=[box], model="large")
    if not found:
        return None
    return {k: [(int(x), int(y)) for x, y in v] for k, v in found[0].items()}


def _sample(image: np.ndarray, box: tuple[int, int, int, int]) -> FaceSample:
    height, width = image.shape[:2]
    return FaceSample(
        embedding=_PLACEHOLDER,
        box=box,
        face_height_px=box[2] - box[0],
        brightness=_face_brightness(image, box),
        sharpness=_face_sharpness(image, box),
        landmarks=_landmarks(image, box),
        image_size=(width, height),
    )


def _search(image: np.ndarray, last: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """Face boxes (full-frame pixels) found in the enlarged region around ``last``."""
    height, width = image.shape[:2]
    top, right, bottom, left = last
    cy, cx = (top + bottom) / 2.0, (left + right) / 2.0
    half = SEARCH_SCALE * max(bottom - top, right - left) / 2.0
    y0, y1 = max(0, int(cy - half)), min(height, int(cy + half))
    x0, x1 = max(0, int(cx - half)), min(width, int(cx + half))
    if y1 - y0 < 8 or x1 - x0 < 8:
        return []
    crop = image[y0:y1, x0:x1]
    scale = min(1.0, TRACK_FACE_PX / max(bottom - top, 1))
    if scale < 1.0:
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        crop = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
    fr = _fr()
    boxes = fr.face_locations(crop, number_of_times_to_upsample=0, model="hog")
    if not boxes:
        boxes = fr.face_locations(crop, number_of_times_to_upsample=1, model="hog")
    out = []
    for t, r, b, lft in boxes:
        box = (y0 + t / scale, x0 + r / scale, y0 + b / scale, x0 + lft / scale)
        out.append(_clip_box(tuple(round(v) for v in box), height, width))
    return out


def track_faces(frames: Sequence[np.ndarray]) -> TrackedCapture:
    """Track the one face through ``frames`` (see module docstring). Raises :class:`TrackBreak`."""
    fr = _fr()
    samples: list[FaceSample] = []
    full_scans = crops = 0
    last: tuple[int, int, int, int] | None = None
    for i, image in enumerate(frames):
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise TrackBreak("unreadable", i)
        height, width = image.shape[:2]
        if last is None:
            full_scans += 1
            boxes = fr.face_locations(image, number_of_times_to_upsample=0, model="hog")
            if not boxes:
                boxes = fr.face_locations(image, number_of_times_to_upsample=1, model="hog")
            if not boxes:
                raise TrackBreak("no_face", i)
            if len(boxes) > 1:
                raise TrackBreak("several_faces", i)
            box = _clip_box(boxes[0], height, width)
            if box[2] - box[0] < MIN_FACE_HEIGHT_PX:
                raise TrackBreak("face_too_small", i)
            if _face_brightness(image, box) < MIN_BRIGHTNESS:
                raise TrackBreak("too_dark", i)
        else:
            crops += 1
            boxes = _search(image, last)
            if not boxes:
                raise TrackBreak("not_continuous", i)
            if len(boxes) > 1:
                raise TrackBreak("several_faces", i)
            box = boxes[0]
            if i % FULL_SCAN_EVERY == 0:
                full_scans += 1
                if len(fr.face_locations(image, number_of_times_to_upsample=0, model="hog")) > 1:
                    raise TrackBreak("several_faces", i)
        sample = _sample(image, box)
        if not sample.landmarks:
            raise TrackBreak("no_face", i)
        samples.append(sample)
        last = box
    return TrackedCapture(samples, full_scans, crops)


def embed_face(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """128-d embedding of the face at ``box`` (same setting as ``detect_single_face``)."""
    enc = _fr().face_encodings(image, known_face_locations=[box], num_jitters=1, model="small")
    if len(enc) != 1:  # pragma: no cover - the encoder returns one per location
        raise ProbeRejected("no_face")
    vec = np.asarray(enc[0], dtype=np.float64).reshape(TEMPLATE_DIM)
    if not np.all(np.isfinite(vec)):  # pragma: no cover - defensive
        raise ProbeRejected("unreadable")
    return vec
