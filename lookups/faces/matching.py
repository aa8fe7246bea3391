"""Templates and the 1:1 decision (no Django imports).

* Embeddings and templates are always ``float64`` arrays of shape ``(128,)`` with finite values.
* :func:`compare` decides ``matched = distance <= threshold`` (Euclidean); the threshold and
  :data:`MODEL_VERSION` are returned in every :class:`Verdict` so they can be stored with the
  check.
"""

from __future__ import annotations

import importlib.metadata
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lookups.faces.samples import FaceSample


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

#: Cohort rule (issue 10 item 6, look-alikes): a probe is accepted for template A only if it is
#: nearer to A than to every *other enrolled* template by at least this much. A sister or a
#: relative who is enrolled herself is nearer to her own template and is refused, whatever the
#: global threshold. Tuning set (K=3..5): no genuine probe was within 0.05 of another template,
#: every nearest-identity photo was; see bench/face_calibration_notes.md.
COHORT_MARGIN: float = 0.03


TEMPLATE_DIM = 128
_TEMPLATE_DTYPE = np.dtype("<f8")
TEMPLATE_BYTES = TEMPLATE_DIM * _TEMPLATE_DTYPE.itemsize


@dataclass(frozen=True)
class Verdict:
    """Outcome of a 1:1 comparison. ``matched`` is exactly ``distance <= threshold``."""

    matched: bool
    distance: float
    threshold: float
    model_version: str
    detect_ms: int
    encode_ms: int
    #: Distance to the nearest other enrolled template (cohort), None without a cohort.
    cohort_distance: float | None = None


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


def _as_cohort(cohort: Any) -> np.ndarray | None:
    """``None``/empty -> None; else an (N, 128) float64 array of finite values."""
    if cohort is None:
        return None
    arr = np.asarray(cohort, dtype=np.float64)
    if arr.size == 0:
        return None
    if arr.ndim != 2 or arr.shape[1] != TEMPLATE_DIM:
        raise ValueError(f"cohort must have shape (N, {TEMPLATE_DIM}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("cohort contains non-finite values")
    return arr


def cohort_distance(cohort: Any, embedding: np.ndarray) -> float | None:
    """Distance from ``embedding`` to the nearest template of ``cohort`` (None if empty)."""
    arr = _as_cohort(cohort)
    if arr is None:
        return None
    return float(np.min(np.linalg.norm(arr - _as_vector(embedding, "embedding"), axis=1)))


def decide(distance: float, threshold: float, nearest_other: float | None, margin: float = COHORT_MARGIN) -> bool:
    """The match rule: within ``threshold`` of the claimed template AND (with a cohort) nearer
    to it than to any other enrolled template by at least ``margin``."""
    if distance > threshold:
        return False
    return nearest_other is None or distance + margin <= nearest_other


def compare(
    template: np.ndarray,
    sample: FaceSample,
    *,
    threshold: float | None = None,
    cohort: Any = None,
) -> Verdict:
    """1:1 decision on one sample: :func:`compare_embedding` on ``sample.embedding``."""
    verdict = compare_embedding(template, sample.embedding, threshold=threshold, cohort=cohort)
    return Verdict(
        matched=verdict.matched,
        distance=verdict.distance,
        threshold=verdict.threshold,
        model_version=MODEL_VERSION,
        detect_ms=int(sample.detect_ms),
        encode_ms=int(sample.encode_ms),
        cohort_distance=verdict.cohort_distance,
    )


def compare_embedding(
    template: np.ndarray,
    embedding: np.ndarray,
    *,
    threshold: float | None = None,
    cohort: Any = None,
) -> Verdict:
    """1:1 decision: ``matched = distance <= threshold`` (DEFAULT_THRESHOLD when None) and,
    when ``cohort`` (the other enrolled templates, N x 128, never the claimed one) is given,
    the cohort rule of :func:`decide`. The cohort only ever refuses; it never accepts."""
    t = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not (0.0 < t < 2.0) or not math.isfinite(t):
        raise ValueError("threshold must be in (0, 2)")
    distance = face_distance(template, embedding)
    nearest_other = cohort_distance(cohort, embedding)
    return Verdict(
        matched=decide(distance, t, nearest_other),
        distance=distance,
        threshold=t,
        model_version=MODEL_VERSION,
        detect_ms=0,
        encode_ms=0,
        cohort_distance=nearest_other,
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
