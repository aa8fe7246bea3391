"""Face check core (issue 11). No Django imports in this package.

The liveness code lives in :mod:`lookups.faces.liveness`; this module re-exports its public API
(the lookup flow, ``liveness_eval`` and the bench build on these names; keep them).
"""

from lookups.faces.liveness import (
    ACTIONS,
    CAPTURE_CODES,
    MIN_PLANAR_RESIDUAL,
    CaptureDecision,
    build_template_from_images,
    capture_planarity,
    check_capture,
    choose_challenge,
    decide_samples,
)

__all__ = [
    "ACTIONS",
    "CAPTURE_CODES",
    "MIN_PLANAR_RESIDUAL",
    "CaptureDecision",
    "build_template_from_images",
    "capture_planarity",
    "check_capture",
    "choose_challenge",
    "decide_samples",
]
