"""What detection hands to matching, liveness and calibration (no Django imports).

Its own module so that ``matching`` (which ``detection`` imports for the template size) can
name the type without importing ``detection`` back; ``detection`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
