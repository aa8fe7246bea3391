"""Face detection, the quality gate, embedding and landmarks (no Django imports).

``face_recognition``/dlib are imported lazily on first use (:func:`_fr`) and the models stay
loaded for the life of the worker process; importing this module is cheap (numpy + Pillow).
Nothing here logs or persists images, embeddings or landmarks.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np
from PIL import ImageFile

from lookups.faces.errors import REJECTION_CODES, ProbeRejected
from lookups.faces.images import (
    MIN_BRIGHTNESS,
    MIN_FACE_HEIGHT_PX,
    MIN_SHARPNESS,
    _clip_box,
    _face_brightness,
    _face_sharpness,
)
from lookups.faces.matching import TEMPLATE_DIM
from lookups.faces.samples import FaceSample

__all__ = ["REJECTION_CODES", "FaceSample", "ProbeRejected", "detect_single_face", "warm_up"]


# ---------------------------------------------------------------------------------------------
# Models (lazy, once per process)
# ---------------------------------------------------------------------------------------------


@functools.cache
def _fr() -> Any:
    """Import ``face_recognition`` on first use. Importing it loads the HOG detector, the 5- and
    68-point shape predictors and the ResNet encoder (~0.8 s, ~100 MB); the cache makes that
    happen once per process (per Celery worker child), and keeps Django imports cheap."""
    import warnings

    with warnings.catch_warnings():
        # face_recognition_models still imports pkg_resources.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import face_recognition

    # face_recognition sets this process-wide on import; truncated uploads must stay refused.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    return face_recognition


def warm_up() -> None:
    """Load the models now (e.g. from Celery's ``worker_process_init``)."""
    _fr()


# ---------------------------------------------------------------------------------------------
# Detection, quality gate, embedding
# ---------------------------------------------------------------------------------------------


def detect_single_face(image: np.ndarray) -> FaceSample:
    """Find exactly one face, apply the quality gate, and embed it.

    Detection is dlib HOG: upsample 0 first (cheap); upsample 1 only if nothing was found
    (finds faces down to ~40 px, which the size gate then refuses below MIN_FACE_HEIGHT_PX).
    Gate order: ``no_face`` / ``multiple_faces`` -> ``face_too_small`` -> ``too_dark`` ->
    ``too_blurry``. The embedding is ``face_encodings(..., known_face_locations=[box])``
    with the 5-point aligner and one jitter, i.e. the exact setting calibration used.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("image must be an H x W x 3 uint8 array (use load_probe_image)")
    if image.dtype != np.uint8:
        raise ValueError("image must be uint8")
    fr = _fr()
    height, width = image.shape[:2]

    t0 = time.perf_counter()
    boxes = fr.face_locations(image, number_of_times_to_upsample=0, model="hog")
    if not boxes:
        boxes = fr.face_locations(image, number_of_times_to_upsample=1, model="hog")
    detect_ms = round((time.perf_counter() - t0) * 1000)
    if not boxes:
        raise ProbeRejected("no_face")
    if len(boxes) > 1:
        raise ProbeRejected("multiple_faces")

    box = _clip_box(boxes[0], height, width)
    face_height = box[2] - box[0]
    if face_height < MIN_FACE_HEIGHT_PX:
        raise ProbeRejected("face_too_small")
    brightness = _face_brightness(image, box)
    if brightness < MIN_BRIGHTNESS:
        raise ProbeRejected("too_dark")
    sharpness = _face_sharpness(image, box)
    if sharpness < MIN_SHARPNESS:
        raise ProbeRejected("too_blurry")

    t1 = time.perf_counter()
    encodings = fr.face_encodings(image, known_face_locations=[box], num_jitters=1, model="small")
    landmark_list = fr.face_landmarks(image, face_locations=[box], model="large")
    encode_ms = round((time.perf_counter() - t1) * 1000)
    if len(encodings) != 1:  # pragma: no cover - encoder always returns one per location
        raise ProbeRejected("no_face")
    embedding = np.asarray(encodings[0], dtype=np.float64).reshape(TEMPLATE_DIM)
    if not np.all(np.isfinite(embedding)):  # pragma: no cover - defensive
        raise ProbeRejected("unreadable")
    embedding.setflags(write=False)
    landmarks = {k: [(int(x), int(y)) for x, y in v] for k, v in landmark_list[0].items()} if landmark_list else None
    return FaceSample(
        embedding=embedding,
        box=box,
        face_height_px=face_height,
        brightness=brightness,
        sharpness=sharpness,
        landmarks=landmarks,
        detect_ms=detect_ms,
        encode_ms=encode_ms,
        image_size=(width, height),
    )


def _landmark_array(sample: FaceSample) -> np.ndarray:
    if not sample.landmarks:
        raise ProbeRejected("no_face")
    pts = [p for key in sorted(sample.landmarks) for p in sample.landmarks[key]]
    return np.asarray(pts, dtype=np.float64)


def _eye_metrics(sample: FaceSample) -> tuple[float, float, float]:
    """(inter-ocular distance px, mean eye aspect ratio, yaw proxy) from 68-pt landmarks."""
    lm = sample.landmarks or {}
    left = np.asarray(lm.get("left_eye", []), dtype=np.float64)
    right = np.asarray(lm.get("right_eye", []), dtype=np.float64)
    nose = np.asarray(lm.get("nose_bridge", []) + lm.get("nose_tip", []), dtype=np.float64)
    if left.shape != (6, 2) or right.shape != (6, 2) or nose.size == 0:
        raise ProbeRejected("no_face")
    lc, rc = left.mean(axis=0), right.mean(axis=0)
    iod = float(np.linalg.norm(lc - rc))
    if iod < 1.0:
        raise ProbeRejected("no_face")

    def ear(e: np.ndarray) -> float:
        v = np.linalg.norm(e[1] - e[5]) + np.linalg.norm(e[2] - e[4])
        h = 2.0 * np.linalg.norm(e[0] - e[3])
        return float(v / h) if h > 0 else 0.0

    axis = (rc - lc) / iod
    yaw = float(np.dot(nose.mean(axis=0) - (lc + rc) / 2.0, axis) / iod)
    return iod, (ear(left) + ear(right)) / 2.0, yaw
