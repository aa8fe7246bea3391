"""Pure face pipeline for Kinguard: probe validation, quality gate, embedding, 1:1 compare.

This module has no Django model imports and no I/O besides what the caller hands in
(bytes / arrays). It is imported by web processes (cheap: numpy + Pillow only) and used by
Celery face workers, where ``face_recognition``/dlib are imported lazily on first use and the
models stay loaded for the life of the worker process (see :func:`_fr`).

Invariants callers can rely on:

* Every refusal is a :class:`ProbeRejected` with a stable ``code`` (see ``REJECTION_CODES``)
  and a user-facing English ``message`` telling the person what to do. Never a stack trace,
  never face data in the message.
* Embeddings and templates are always ``float64`` arrays of shape ``(128,)`` with finite values.
* ``compare`` decides ``matched = distance <= threshold`` (Euclidean); the threshold and
  :data:`MODEL_VERSION` are returned in every :class:`Verdict` so they can be stored with the
  check.
* Nothing here logs or persists images, embeddings or landmarks.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_THRESHOLD",
    "MAX_BURST_FRAMES",
    "MAX_IMAGE_PIXELS",
    "MAX_LONG_SIDE",
    "MAX_UPLOAD_BYTES",
    "MIN_BRIGHTNESS",
    "MIN_FACE_HEIGHT_PX",
    "MIN_SHARPNESS",
    "MODEL_VERSION",
    "REJECTION_CODES",
    "FaceSample",
    "MotionStats",
    "ProbeRejected",
    "Verdict",
    "build_template",
    "burst_motion",
    "calibrate",
    "check_burst",
    "check_burst_arrays",
    "compare",
    "decode_template_bytes",
    "default_faces_dir",
    "detect_single_face",
    "encode_template_bytes",
    "load_probe_image",
    "parse_identities",
    "warm_up",
    "y4m_frames",
]

# ---------------------------------------------------------------------------------------------
# Versions and constants
# ---------------------------------------------------------------------------------------------


def _dist_version(*names: str) -> str:
    """Release version (``X.Y.Z``, packaging suffixes like ``.post1`` dropped) of the first
    installed distribution among ``names``; ``"unknown"`` if none is installed."""
    for name in names:
        try:
            raw = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        match = re.match(r"\d+(?:\.\d+)*", raw)
        return match.group(0) if match else raw
    return "unknown"


#: Identifies everything that changes embeddings or distances. Stored with every template and
#: every check; a template made under a different MODEL_VERSION must be re-enrolled, never
#: compared. Built from the installed distributions without importing dlib (cheap import).
MODEL_VERSION: str = (
    f"face_recognition-{_dist_version('face_recognition', 'face-recognition')}"
    f"/dlib-{_dist_version('dlib', 'dlib-bin')}"
    "/resnet128-v1/hog"
)

#: Calibrated on /work/shared/faces person_01-25 + person_36-40 with K=3 enrollment images
#: (mean template) so that FMR <= 0.1 % there; see bench/face_calibration_notes.md.
DEFAULT_THRESHOLD: float = 0.42

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Refuse images above this many pixels *before* decoding them (a 48 MP phone photo still
#: passes; Pillow's own bomb limit is ~89 MP and would only warn there).
MAX_IMAGE_PIXELS = 50_000_000
#: Decoded probes are downscaled so that the long side is at most this many pixels. 800 is
#: the largest size in the calibration set (so calibration is unaffected) and keeps a 4000 px
#: phone photo within ~1.25x the cost of an 800 px one (JPEG draft decodes it at 1/4 scale,
#: HOG then runs on the same pixel count); see bench/face_throughput.py.
MAX_LONG_SIDE = 800
#: Still formats we parse at all (Pillow is told to try only these decoders). The JPEG opener
#: also yields "MPO" images: what some phones write for photos with an embedded preview or
#: depth frame; those are treated as stills (first frame).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

#: Quality gate, calibrated on /work/shared/faces (bench/face_calibration_notes.md).
#: Face box height after the downscale. dlib HOG boxes come in discrete sizes
#: (... 43, 52, 62, 72, 86, 104, 124 ... px): special/small_face.jpg is at 43 and refused,
#: the smallest LFW thumbnails in the set are at 52 and pass.
MIN_FACE_HEIGHT_PX = 50
#: Mean Rec.601 luma (0-255) of the face box; darkest image of the set: 58.8.
MIN_BRIGHTNESS = 40.0
#: Variance of the Laplacian of the 64x64 grey face crop; least sharp image of the set: 34.2.
#: A Gaussian blur of sigma = 4 % of the face height (which moves the embedding by ~0.5,
#: i.e. by a whole threshold) brings every tested face under 12.
MIN_SHARPNESS = 30.0
#: Side of the (face-size independent) sharpness crop.
_SHARPNESS_CROP_PX = 64

MAX_BURST_FRAMES = 20

TEMPLATE_DIM = 128
_TEMPLATE_DTYPE = np.dtype("<f8")
TEMPLATE_BYTES = TEMPLATE_DIM * _TEMPLATE_DTYPE.itemsize

# ---------------------------------------------------------------------------------------------
# Errors and result types
# ---------------------------------------------------------------------------------------------

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


@dataclass(frozen=True)
class FaceSample:
    """One accepted face. ``embedding``: float64 (128,); ``box``: (top, right, bottom, left)
    in pixels of the (downscaled) image it came from; ``landmarks``: 68-point dlib landmarks
    as ``{feature: [(x, y), ...]}`` in the same pixel frame (``None`` if unavailable).

    ``detect_ms``/``encode_ms``/``image_size`` are additions to the agreed interface (all with
    defaults) so :func:`compare` can report timings and bursts can check frame geometry.
    """

    embedding: np.ndarray
    box: tuple[int, int, int, int]
    face_height_px: int
    brightness: float
    sharpness: float
    landmarks: dict[str, list[tuple[int, int]]] | None
    detect_ms: int = 0
    encode_ms: int = 0
    image_size: tuple[int, int] | None = field(default=None)  # (width, height)


@dataclass(frozen=True)
class Verdict:
    """Outcome of a 1:1 comparison. ``matched`` is exactly ``distance <= threshold``."""

    matched: bool
    distance: float
    threshold: float
    model_version: str
    detect_ms: int
    encode_ms: int


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
# Loading
# ---------------------------------------------------------------------------------------------


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Alpha is composited on white; 16/32-bit integer and float
    greyscale is rescaled (not clipped) to 8 bits."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB", "1") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        top = float(finite.max()) if finite.size else 0.0
        if mode.startswith("I;16") or top > 255.0:
            scale = 255.0 / 65535.0 if top <= 65535.0 else 255.0 / top
        elif mode == "F" and top <= 1.0:
            scale = 255.0
        else:
            scale = 1.0
        arr8 = np.clip(np.nan_to_num(arr * scale), 0, 255).round().astype(np.uint8)
        return Image.fromarray(arr8, mode="L").convert("RGB")
    # CMYK (Pillow undoes Adobe inversion in the JPEG decoder), L, 1, P, YCbCr, LAB, HSV, ...
    return im.convert("RGB")


def load_probe_image(data: bytes) -> np.ndarray:
    """Validate and decode an uploaded photo by its *content* (never its name or MIME type).

    Returns an ``H x W x 3`` ``uint8`` RGB array, upright (EXIF orientation applied), with
    ``max(H, W) <= MAX_LONG_SIDE``. Refusals (``ProbeRejected.code``): ``empty``,
    ``too_large`` (> MAX_UPLOAD_BYTES, checked before parsing), ``not_an_image`` (no allowed
    decoder recognises it), ``too_many_pixels`` (header size checked before any decoding,
    plus Pillow's DecompressionBomb guard), ``animated`` (more than one frame; MPO is a still),
    ``unreadable`` (truncated or corrupt pixel data).
    """
    if not data:
        raise ProbeRejected("empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ProbeRejected("too_large")
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # see _fr(): never decode a cut-off upload
    try:
        im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ProbeRejected("too_many_pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ProbeRejected("not_an_image") from exc

    try:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ProbeRejected("unreadable")
        if width * height > MAX_IMAGE_PIXELS:
            raise ProbeRejected("too_many_pixels")
        if im.format != "MPO" and (getattr(im, "is_animated", False) or getattr(im, "n_frames", 1) > 1):
            raise ProbeRejected("animated")
        if im.format in ("JPEG", "MPO") and max(width, height) > MAX_LONG_SIDE:
            # DCT-domain downscale by 1/2, 1/4 or 1/8 while decoding; never below target.
            factor = MAX_LONG_SIDE / max(width, height)
            im.draft(None, (math.ceil(width * factor), math.ceil(height * factor)))
        im.load()
        im = ImageOps.exif_transpose(im)
        im = _to_rgb(im)
        if max(im.size) > MAX_LONG_SIDE:
            factor = MAX_LONG_SIDE / max(im.size)
            new_size = (
                max(1, round(im.size[0] * factor)),
                max(1, round(im.size[1] * factor)),
            )
            im = im.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        arr = np.asarray(im, dtype=np.uint8)
    except ProbeRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ProbeRejected("too_many_pixels") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        # "image file is truncated", broken chunks / CRCs, bad EXIF, ...
        raise ProbeRejected("unreadable") from exc
    finally:
        im.close()
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - defensive
        raise ProbeRejected("unreadable")
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------------------------------
# Detection, quality gate, embedding
# ---------------------------------------------------------------------------------------------


def _luma(image: np.ndarray) -> np.ndarray:
    rgb = image.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _clip_box(box: tuple[int, int, int, int], height: int, width: int) -> tuple[int, int, int, int]:
    top, right, bottom, left = (int(v) for v in box)
    return max(0, top), min(width, right), min(height, bottom), max(0, left)


def _face_brightness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    top, right, bottom, left = box
    crop = image[top:bottom, left:right]
    if crop.size == 0:
        return 0.0
    return float(_luma(crop).mean())


def _laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian over the interior of ``gray``."""
    lap = gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * gray[1:-1, 1:-1]
    return float(lap.var())


def _face_sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Focus measure of the face box, independent of face size.

    The grey face crop is resampled to 64x64 (so blur is measured relative to the face, which
    is what degrades the embedding; 64 px barely upsamples the smallest accepted faces) and
    the variance of its Laplacian is returned. Blur removes high frequencies, so the value
    drops. It also drops with very low contrast, which is refused too (retake).
    """
    top, right, bottom, left = box
    crop = image[top:bottom, left:right]
    if crop.shape[0] < 3 or crop.shape[1] < 3:
        return 0.0
    gray = Image.fromarray(crop).convert("L")
    size = (_SHARPNESS_CROP_PX, _SHARPNESS_CROP_PX)
    gray = gray.resize(size, Image.Resampling.BILINEAR)
    arr = np.asarray(gray, dtype=np.float64)
    return _laplacian_variance(arr)


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


# ---------------------------------------------------------------------------------------------
# Templates and comparison
# ---------------------------------------------------------------------------------------------


def _as_vector(vec: Any, what: str) -> np.ndarray:
    arr = np.asarray(vec, dtype=np.float64)
    if arr.shape != (TEMPLATE_DIM,):
        raise ValueError(f"{what} must have shape ({TEMPLATE_DIM},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains non-finite values")
    return arr


def build_template(samples: Sequence[FaceSample]) -> np.ndarray:
    """Enrollment template: the arithmetic mean of the samples' embeddings (>= 1 sample).

    Why the mean: dlib's ResNet was trained so that Euclidean distance separates identities;
    averaging K accepted photos cancels much of the per-photo pose/light/expression noise, so
    genuine probes land closer to the template than to any single photo (at K=3 the same FMR
    is reached with a clearly lower FNMR than K=1; see bench/face_calibration_notes.md). The
    alternative "match if any enrolled photo is within t" gives an impostor K chances and
    raises FMR. The mean is *not* re-normalised: the threshold was calibrated on exactly this
    template, so enrollment must call this function, never re-implement it.
    """
    if not samples:
        raise ValueError("build_template needs at least one sample")
    stacked = np.stack([_as_vector(s.embedding, "sample embedding") for s in samples])
    template = stacked.mean(axis=0)
    template.setflags(write=False)
    return template


def face_distance(template: np.ndarray, embedding: np.ndarray) -> float:
    """Euclidean distance between two 128-d vectors (validated)."""
    a = _as_vector(template, "template")
    b = _as_vector(embedding, "embedding")
    return float(np.linalg.norm(a - b))


def compare(template: np.ndarray, sample: FaceSample, *, threshold: float | None = None) -> Verdict:
    """1:1 decision: ``matched = distance <= threshold`` (DEFAULT_THRESHOLD when None)."""
    t = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not (0.0 < t < 2.0) or not math.isfinite(t):
        raise ValueError("threshold must be in (0, 2)")
    distance = face_distance(template, sample.embedding)
    return Verdict(
        matched=distance <= t,
        distance=distance,
        threshold=t,
        model_version=MODEL_VERSION,
        detect_ms=int(sample.detect_ms),
        encode_ms=int(sample.encode_ms),
    )


def encode_template_bytes(vec: Any) -> bytes:
    """Serialise a template as exactly 1,024 bytes: 128 little-endian float64 values.

    No header; the model version is stored beside it. Encryption happens in the caller."""
    return _as_vector(vec, "template").astype(_TEMPLATE_DTYPE).tobytes()


def decode_template_bytes(b: bytes) -> np.ndarray:
    """Inverse of :func:`encode_template_bytes`; refuses wrong length or non-finite values."""
    if not isinstance(b, bytes | bytearray | memoryview):
        raise TypeError("template bytes expected")
    raw = bytes(b)
    if len(raw) != TEMPLATE_BYTES:
        raise ValueError(f"template must be {TEMPLATE_BYTES} bytes, got {len(raw)}")
    arr = np.frombuffer(raw, dtype=_TEMPLATE_DTYPE).astype(np.float64)
    arr = _as_vector(arr, "template")
    arr.setflags(write=False)
    return arr


# ---------------------------------------------------------------------------------------------
# Burst (liveness-lite) check
# ---------------------------------------------------------------------------------------------

#: Mean absolute difference (grey levels, 0-255) of aligned 64x64 face crops below which two
#: frames count as the same picture (re-encoding a still gives ~0.2-0.6).
STILL_PIXEL_EPS = 1.0
#: Landmark movement (mean, in inter-ocular distances, IOD) below which landmarks count as
#: unchanged between two frames.
STILL_LANDMARK_EPS = 0.01
#: Measured on /work/shared/faces/camera (bench/face_calibration_notes.md): a still with
#: sensor-like noise or re-compression gives rigid <= 0.012, non-rigid <= 0.022, EAR range
#: <= 0.053 and yaw range <= 0.011; the zoom/pan clips give rigid 0.28-0.32.
#: Face translation + scale change over the burst, in IODs, that counts as motion.
MIN_MOTION_IOD = 0.04
#: Landmark residual after removing the best similarity transform, in IODs.
MIN_NONRIGID_IOD = 0.05
#: Eye-aspect-ratio range over the burst (an open eye is ~0.3, a blink ~0.1).
MIN_EAR_RANGE = 0.10
#: Range of the yaw proxy (nose offset from the eye midpoint along the eye axis, in IODs).
MIN_YAW_RANGE = 0.05


@dataclass(frozen=True)
class MotionStats:
    """Motion evidence measured over a burst (all distances in inter-ocular distances).

    ``rigid_motion``: largest displacement of the face (landmark centroid shift plus scale
    change) relative to the first frame -- what a hand-held camera, or a photo moved in
    front of it, produces. ``nonrigid_motion``: largest landmark residual after removing the
    best 2-D similarity transform to the first frame -- what expression, blinking or head
    rotation produce and a flat photo cannot. ``ear_range`` / ``yaw_range``: spread of the
    eye aspect ratio and of the yaw proxy. ``min_pixel_diff`` / ``max_pixel_diff``: smallest
    and largest mean absolute difference of aligned grey face crops between consecutive
    frames. ``distinct_frames``: frames not near-identical to their predecessor (+1).
    """

    rigid_motion: float
    nonrigid_motion: float
    ear_range: float
    yaw_range: float
    min_pixel_diff: float
    max_pixel_diff: float
    distinct_frames: int


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


def _aligned_gray_crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    top, right, bottom, left = box
    crop = Image.fromarray(image[top:bottom, left:right]).convert("L")
    return np.asarray(crop.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float64)


def _similarity_residual(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares 2-D similarity (Umeyama) mapping ``src`` onto ``dst``.

    Returns (residuals per point, scale, translation length)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = float((s0**2).sum() / len(src))
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1.0
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / var_s) if var_s > 0 else 1.0
    mapped = scale * (s0 @ rot.T) + mu_d
    return np.linalg.norm(mapped - dst, axis=1), scale, float(np.linalg.norm(mu_d - mu_s))


def burst_motion(images: Sequence[np.ndarray], samples: Sequence[FaceSample]) -> MotionStats:
    """Measure motion evidence between the frames of a burst (see :class:`MotionStats`)."""
    if len(images) != len(samples) or len(samples) < 2:
        raise ValueError("need >= 2 frames with one sample each")
    first_pts = _landmark_array(samples[0])
    metrics = [_eye_metrics(s) for s in samples]
    iod0 = metrics[0][0]
    crops = [_aligned_gray_crop(img, s.box) for img, s in zip(images, samples, strict=True)]

    rigid, nonrigid = 0.0, 0.0
    for s in samples[1:]:
        pts = _landmark_array(s)
        if pts.shape != first_pts.shape:
            raise ProbeRejected("no_face")
        residuals, scale, shift = _similarity_residual(first_pts, pts)
        radius = float(np.linalg.norm(first_pts - first_pts.mean(axis=0), axis=1).mean())
        rigid = max(rigid, (shift + abs(scale - 1.0) * radius) / iod0)
        nonrigid = max(nonrigid, float(residuals.mean()) / iod0)

    diffs: list[float] = []
    distinct = 1
    for i in range(1, len(samples)):
        pixel = float(np.abs(crops[i] - crops[i - 1]).mean())
        moved = float(
            np.linalg.norm(_landmark_array(samples[i]) - _landmark_array(samples[i - 1]), axis=1).mean()
        ) / max(metrics[i - 1][0], 1.0)
        diffs.append(pixel)
        if not (pixel < STILL_PIXEL_EPS and moved < STILL_LANDMARK_EPS):
            distinct += 1
    ears = [m[1] for m in metrics]
    yaws = [m[2] for m in metrics]
    return MotionStats(
        rigid_motion=rigid,
        nonrigid_motion=nonrigid,
        ear_range=max(ears) - min(ears),
        yaw_range=max(yaws) - min(yaws),
        min_pixel_diff=min(diffs),
        max_pixel_diff=max(diffs),
        distinct_frames=distinct,
    )


def check_burst(
    frames: Sequence[bytes],
    template: np.ndarray,
    *,
    threshold: float | None = None,
    min_frames: int = 3,
    require_nonrigid: bool = False,
) -> Verdict:
    """Verify a short capture burst against a template, with a replay/motion check.

    Every frame goes through :func:`load_probe_image` and :func:`detect_single_face` (any
    refusal propagates). All frames must have the same size (``inconsistent_frames``).
    Then, before any match decision:

    * ``replayed_still``: fewer than ``min_frames`` distinct frames, where consecutive frames
      are "the same" when their aligned 64x64 grey face crops differ by < STILL_PIXEL_EPS
      grey levels on average AND their landmarks moved < STILL_LANDMARK_EPS IODs.
    * ``no_motion``: no rigid face motion >= MIN_MOTION_IOD, no non-rigid landmark change
      >= MIN_NONRIGID_IOD, no eye-aspect-ratio range >= MIN_EAR_RANGE and no yaw-proxy range
      >= MIN_YAW_RANGE -- the frames differ only by noise / recompression.
      With ``require_nonrigid=True`` rigid motion alone is not enough.

    What this accepts, honestly: any burst in which the face moves a little in the frame.
    That includes a printed photo or a screen moved in front of the camera and synthetic
    zoom/pan videos of a still (the two ``camera/*.y4m`` clips are exactly that and are
    accepted by default; with ``require_nonrigid=True`` they are refused). It stops naive
    replays (one picture submitted N times, or with added noise). It is not presentation-attack
    detection; the face check is a second factor beside the OTP device.

    Verdict: ``distance`` is the largest frame distance; ``matched`` only if every frame is
    within the threshold; timings are sums over frames.
    """
    if len(frames) < min_frames:
        raise ProbeRejected("too_few_frames")
    if len(frames) > MAX_BURST_FRAMES:
        raise ProbeRejected("too_many_frames")
    images = [load_probe_image(f) for f in frames]
    return check_burst_arrays(
        images,
        template,
        threshold=threshold,
        min_frames=min_frames,
        require_nonrigid=require_nonrigid,
    )


def check_burst_arrays(
    images: Sequence[np.ndarray],
    template: np.ndarray,
    *,
    threshold: float | None = None,
    min_frames: int = 3,
    require_nonrigid: bool = False,
) -> Verdict:
    """:func:`check_burst` for frames already decoded by :func:`load_probe_image` (the web
    process validates uploads, the worker gets the normalised pixels). Same rules."""
    if min_frames < 2:
        raise ValueError("min_frames must be >= 2")
    if len(images) < min_frames:
        raise ProbeRejected("too_few_frames")
    if len(images) > MAX_BURST_FRAMES:
        raise ProbeRejected("too_many_frames")
    tmpl = _as_vector(template, "template")
    t = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if len({img.shape for img in images}) != 1:
        raise ProbeRejected("inconsistent_frames")
    samples = [detect_single_face(img) for img in images]

    stats = burst_motion(images, samples)
    if stats.distinct_frames < min_frames:
        raise ProbeRejected("replayed_still")
    nonrigid_ok = (
        stats.nonrigid_motion >= MIN_NONRIGID_IOD
        or stats.ear_range >= MIN_EAR_RANGE
        or stats.yaw_range >= MIN_YAW_RANGE
    )
    if not nonrigid_ok and (require_nonrigid or stats.rigid_motion < MIN_MOTION_IOD):
        raise ProbeRejected("no_motion")

    verdicts = [compare(tmpl, s, threshold=t) for s in samples]
    worst = max(verdicts, key=lambda v: v.distance)
    return Verdict(
        matched=all(v.matched for v in verdicts),
        distance=worst.distance,
        threshold=t,
        model_version=MODEL_VERSION,
        detect_ms=sum(v.detect_ms for v in verdicts),
        encode_ms=sum(v.encode_ms for v in verdicts),
    )


def y4m_frames(path: str | os.PathLike[str], *, limit: int | None = None) -> list[np.ndarray]:
    """Read a YUV4MPEG2 file (4:2:0 or mono, 8-bit) into RGB ``uint8`` frames.

    BT.601 conversion; limited range unless the header says ``XCOLORRANGE=FULL``.
    Intended for tests and tooling (fake-webcam clips), not for user uploads."""
    with open(path, "rb") as fh:
        header = fh.readline()
        if not header.startswith(b"YUV4MPEG2 "):
            raise ValueError("not a YUV4MPEG2 file")
        params = {tok[:1]: tok[1:] for tok in header.decode("ascii").split()[1:]}
        width, height = int(params["W"]), int(params["H"])
        chroma = params.get("C", "420jpeg")
        full_range = any(tok == "XCOLORRANGE=FULL" for tok in header.decode("ascii").split()[1:])
        if chroma.startswith("420"):
            cw, ch = (width + 1) // 2, (height + 1) // 2
        elif chroma == "mono":
            cw = ch = 0
        else:
            raise ValueError(f"unsupported y4m chroma {chroma!r}")
        frames: list[np.ndarray] = []
        while limit is None or len(frames) < limit:
            line = fh.readline()
            if not line:
                break
            if not line.startswith(b"FRAME"):
                raise ValueError("corrupt y4m frame header")
            y = np.frombuffer(fh.read(width * height), np.uint8)
            if y.size != width * height:
                raise ValueError("truncated y4m frame")
            y = y.reshape(height, width).astype(np.float64)
            if cw:
                u = np.frombuffer(fh.read(cw * ch), np.uint8).reshape(ch, cw).astype(np.float64)
                v = np.frombuffer(fh.read(cw * ch), np.uint8).reshape(ch, cw).astype(np.float64)
                u = u.repeat(2, 0).repeat(2, 1)[:height, :width] - 128.0
                v = v.repeat(2, 0).repeat(2, 1)[:height, :width] - 128.0
            else:
                u = v = np.zeros_like(y)
            if full_range:
                yy, cu, cv = y, u, v
            else:
                yy, cu, cv = (y - 16.0) * (255.0 / 219.0), u * (255.0 / 224.0), v * (255.0 / 224.0)
            r = yy + 1.402 * cv
            g = yy - 0.344136 * cu - 0.714136 * cv
            b = yy + 1.772 * cu
            rgb = np.clip(np.stack([r, g, b], axis=-1).round(), 0, 255).astype(np.uint8)
            frames.append(rgb)
    return frames


# ---------------------------------------------------------------------------------------------
# Calibration (pure; used by the calibrate_faces management command and tests)
# ---------------------------------------------------------------------------------------------


def default_faces_dir() -> Path:
    """``$KINGUARD_FACES_DIR`` or ``<repo>/../shared/faces`` (never copied into the repo)."""
    env = os.environ.get("KINGUARD_FACES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "faces"


_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


def parse_identities(spec: str | None, available: Iterable[str]) -> list[str]:
    """Expand ``"person_01-25,person_36-40"`` (or exact folder names) against ``available``.

    ``None``/empty means all. Unknown names raise ``ValueError``."""
    names = sorted(available)
    if not spec:
        return names
    chosen: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(.*?)(\d+)-(\d+)", part)
        if m and part not in names:
            prefix, lo, hi = m.group(1), m.group(2), m.group(3)
            wanted = [f"{prefix}{i:0{len(lo)}d}" for i in range(int(lo), int(hi) + 1)]
        else:
            wanted = [part]
        for w in wanted:
            if w not in names:
                raise ValueError(f"unknown identity folder {w!r}")
            if w not in chosen:
                chosen.append(w)
    return chosen


def _threshold_for_fmr(impostor: np.ndarray, max_fmr: float) -> float | None:
    """Largest t with (#impostor distances <= t) / M <= max_fmr (t just below the next
    impostor distance); None if there are no impostor comparisons."""
    if impostor.size == 0:
        return None
    allowed = math.floor(max_fmr * impostor.size + 1e-9)
    ordered = np.sort(impostor)
    if allowed >= ordered.size:
        return float(ordered[-1])
    return float(np.nextafter(ordered[allowed], -np.inf))


def calibrate(
    dir: str | os.PathLike[str],  # name fixed by the agreed interface
    enroll: int,
    identities: Sequence[str] | str | None = None,
    thresholds: Sequence[float] | None = None,
    *,
    threshold: float | None = None,
    max_fmr: float = 0.001,
    progress: Any = None,
) -> dict[str, Any]:
    """Template-vs-probe error rates on a folder-per-identity face set.

    For each identity the first ``enroll`` images (sorted by file name) *that pass the quality
    gate* form the template via :func:`build_template` -- a refused enrollment photo is
    retaken at the desk, so it is counted as ``enroll_fta`` and the next image is used. All
    remaining images are probes (load_probe_image + detect_single_face; refusals count as
    ``probe_fta``, never as false non-matches) and are compared with every template: same
    identity = genuine, other = impostor. Each image is embedded once.

    Returns a dict with ``rows`` (threshold, fnmr, fmr, false_non_matches, false_matches),
    ``genuine``/``impostor`` distance lists, FTA details, ``best_grid_threshold`` (largest
    grid value with FMR <= max_fmr), ``exact_threshold`` (same, continuous) and ``configured``
    (the row for ``threshold`` or DEFAULT_THRESHOLD).
    """
    if enroll < 1:
        raise ValueError("enroll must be >= 1")
    root = Path(dir)
    available = [p.name for p in root.iterdir() if p.is_dir()]
    if identities is None or identities == "":
        # Default: the identity folders of the shared layout (person_NN); other sub-folders
        # such as special/ and camera/ are not identities.
        people = [name for name in available if re.fullmatch(r"person_\d+", name)]
        available = people or available
    if isinstance(identities, str) or identities is None:
        idents = parse_identities(identities, available)
    else:
        idents = parse_identities(",".join(identities), available)
    if thresholds is None:
        thresholds = [round(0.30 + 0.02 * i, 2) for i in range(16)]
    configured_t = DEFAULT_THRESHOLD if threshold is None else float(threshold)

    templates: dict[str, np.ndarray] = {}
    probes: dict[str, list[tuple[str, np.ndarray]]] = {}
    enroll_fta: list[tuple[str, str]] = []
    probe_fta: list[tuple[str, str]] = []
    n_images = 0
    t_start = time.perf_counter()
    for ident in idents:
        files = sorted(p for p in (root / ident).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        enrolled: list[FaceSample] = []
        probes[ident] = []
        for path in files:
            n_images += 1
            rel = f"{ident}/{path.name}"
            try:
                sample = detect_single_face(load_probe_image(path.read_bytes()))
            except ProbeRejected as exc:
                (enroll_fta if len(enrolled) < enroll else probe_fta).append((rel, exc.code))
                continue
            if len(enrolled) < enroll:
                enrolled.append(sample)
            else:
                probes[ident].append((rel, sample.embedding))
        if enrolled:
            templates[ident] = build_template(enrolled)
        if progress is not None:
            progress(ident, len(enrolled), len(probes[ident]))

    genuine: list[float] = []
    impostor: list[float] = []
    impostor_pairs: list[tuple[float, str, str]] = []
    for ident, plist in probes.items():
        for rel, emb in plist:
            for t_ident, tmpl in templates.items():
                d = float(np.linalg.norm(tmpl - emb))
                if t_ident == ident:
                    genuine.append(d)
                else:
                    impostor.append(d)
                    impostor_pairs.append((d, rel, t_ident))
    gen = np.asarray(genuine)
    imp = np.asarray(impostor)

    def row(t: float) -> dict[str, Any]:
        fnm = int((gen > t).sum())
        fm = int((imp <= t).sum())
        return {
            "threshold": t,
            "false_non_matches": fnm,
            "false_matches": fm,
            "fnmr": fnm / gen.size if gen.size else float("nan"),
            "fmr": fm / imp.size if imp.size else float("nan"),
        }

    rows = [row(float(t)) for t in thresholds]
    ok = [r["threshold"] for r in rows if imp.size and r["fmr"] <= max_fmr]
    impostor_pairs.sort()
    return {
        "dir": str(root),
        "enroll": enroll,
        "identities": idents,
        "n_images": n_images,
        "n_templates": len(templates),
        "n_probes": sum(len(v) for v in probes.values()),
        "genuine": genuine,
        "impostor": impostor,
        "rows": rows,
        "max_fmr": max_fmr,
        "best_grid_threshold": max(ok) if ok else None,
        "exact_threshold": _threshold_for_fmr(imp, max_fmr),
        "enroll_fta": enroll_fta,
        "probe_fta": probe_fta,
        "closest_impostors": impostor_pairs[:10],
        "configured": row(configured_t),
        "model_version": MODEL_VERSION,
        "seconds": time.perf_counter() - t_start,
    }
