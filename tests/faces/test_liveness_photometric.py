"""The pixel planarity test of lookups.faces.liveness (PixelPlane, pixel_planarity) and the cheap
photometric cut grid: synthetic textures (no models), a swung photo of a tuning identity and
tuning live windows (``../shared/faces``; skipped when missing unless CI=true)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter

from lookups import faces
from lookups.faces import geometry, liveness, tracking
from lookups.faces.detection import FaceSample
from lookups.faces.images import _face_brightness, _face_sharpness
from lookups.faces.matching import DEFAULT_THRESHOLD
from tests.helpers import live_window, require_face_files


def _texture(seed: int, size: int = 320) -> np.ndarray:
    """A smooth random grey texture (detail of a few pixels, like a face photo), RGB uint8."""
    rng = np.random.default_rng(seed)
    g = np.kron(rng.normal(0, 1, (size // 8, size // 8)), np.ones((8, 8)))
    img = Image.fromarray(((g - g.min()) / (g.max() - g.min()) * 200 + 20).astype(np.uint8))
    g = np.asarray(img.filter(ImageFilter.GaussianBlur(4)))
    return np.repeat(g[..., None], 3, axis=2)


def _warp(img: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``img`` seen through the homography ``h`` (source -> output pixels)."""
    inv = np.linalg.inv(h)
    inv = inv / inv[2, 2]
    out = Image.fromarray(img).transform(
        (img.shape[1], img.shape[0]), Image.Transform.PERSPECTIVE, tuple(inv.ravel()[:8]), Image.Resampling.BILINEAR
    )
    return np.asarray(out)


BOX = (80, 240, 240, 80)  # top, right, bottom, left


def test_a_plane_seen_through_a_homography_aligns_from_a_rough_start() -> None:
    img = _texture(1)
    h = np.array([[0.95, 0.04, 6.0], [-0.03, 1.02, -4.0], [2e-4, -1e-4, 1.0]])
    plane = geometry.PixelPlane(img, BOX)
    rough = h.copy()
    rough[0, 2] += 2.0  # the landmark homography of a photo is off by a pixel or two
    rough[1, 2] -= 1.5
    assert plane.residual(_warp(img, h), rough, iters=0) > 0.05
    assert plane.residual(_warp(img, h), rough) < 0.02


def test_a_non_planar_change_does_not_align() -> None:
    img = _texture(1)
    moved = img.copy()
    moved[140:200, 130:190] = img[140:200, 122:182]  # a part moves against the rest (parallax)
    plane = geometry.PixelPlane(img, BOX)
    assert plane.residual(moved, np.eye(3)) > 0.05
    full, region = plane.residuals(moved, np.eye(3), mask=plane.region((130, 140, 190, 200)))
    assert region > full


def test_cheap_photometric_grid_still_sees_a_cut() -> None:
    a, b = _texture(1), _texture(2)
    frames = [a, a, a, b, b, b]
    lms = np.tile(np.random.default_rng(0).uniform(90, 230, (1, 68, 2)), (6, 1, 1))
    steps = geometry.photometric_steps(frames, [BOX] * 6, lms)
    assert int(np.argmax(steps)) == 2
    assert steps[2] > 0.5 and max(steps[0], steps[1], steps[3], steps[4]) < 0.01


# --- real pictures -------------------------------------------------------------------------


def _root() -> Path:
    return require_face_files("person_02/04.jpg", "live/clip_10/001.jpg")


def _window(clip: str, start: int, n: int = 35) -> list[np.ndarray]:
    _root()
    return live_window(clip, start, n)


def _swung_photo(ident: str = "person_02", n: int = 30) -> list[np.ndarray]:
    """A tuning identity's photo swung +-30 degrees about the vertical axis, once, on a grey
    canvas (a print held in the hand, the bench's ``tilt_yaw``)."""
    photo = Image.open(_root() / ident / "04.jpg").convert("RGB")
    w, h = photo.size
    scale = 300.0 / max(w, h)
    frames = []
    for i in range(n):
        yaw = np.radians(30) * np.sin(2 * np.pi * i / (n - 1))
        c = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) * scale
        x, z = c[:, 0] * np.cos(yaw), -c[:, 0] * np.sin(yaw)
        quad = np.c_[240 + 600 * x / (600 + z), 180 + 600 * c[:, 1] / (600 + z)]
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
        hm = liveness._homography(quad, src)
        hm = hm / hm[2, 2]
        out = Image.new("RGB", (480, 360), (110, 110, 110))
        warped = photo.transform((480, 360), Image.Transform.PERSPECTIVE, tuple(hm.ravel()[:8]))
        mask = Image.new("L", photo.size, 255).transform((480, 360), Image.Transform.PERSPECTIVE, tuple(hm.ravel()[:8]))
        out.paste(warped, (0, 0), mask)
        frames.append(np.asarray(out))
    return frames


def _with_fake_turn(samples: Sequence[FaceSample], peak_iod: float = 0.2) -> list[FaceSample]:
    """The samples with the nose landmarks pushed along the eye axis by a smooth ramp up to
    ``peak_iod``: what the landmark model sometimes fits on a swung photo (the held-out
    person_30 failure), a turn parallax the landmark rules accept."""
    n = len(samples)
    ramp = np.clip((np.arange(n) - n * 0.3) / (n * 0.3), 0.0, 1.0) * peak_iod
    out = []
    for s, r in zip(samples, ramp, strict=True):
        lm: dict[str, Any] = {k: list(v) for k, v in (s.landmarks or {}).items()}
        lc, rc = np.mean(lm["left_eye"], axis=0), np.mean(lm["right_eye"], axis=0)
        shift = (rc - lc) * r  # turn_left is a positive parallax along the eye axis
        for name in ("nose_bridge", "nose_tip"):
            lm[name] = [(float(x + shift[0]), float(y + shift[1])) for x, y in lm[name]]
        out.append(dataclasses.replace(s, landmarks=lm))
    return out


def _same_person(idx: Sequence[int]) -> np.ndarray:
    return np.zeros((len(idx), 128))


def test_swung_photo_faking_a_turn_is_refused_by_its_pixels() -> None:
    frames = _swung_photo()
    samples = _with_fake_turn(tracking.track_faces(frames).samples)

    def decide(with_frames: list[np.ndarray] | None) -> faces.CaptureDecision:
        return faces.decide_samples(
            samples,
            challenge=["turn_left"],
            template=None,
            threshold=DEFAULT_THRESHOLD,
            embed_many=_same_person,
            # the quality gate on the pixels either way: only the pixel liveness tests are off
            sharpness=lambda i: _face_sharpness(frames[i], samples[i].box),
            brightness=lambda i: _face_brightness(frames[i], samples[i].box),
            frames=with_frames,
        )

    # the landmark rules alone accept it: non-planar landmarks, a smooth turn
    assert decide(None).accepted
    # the pixels at the turn's peak are the photo's plane
    d = decide(frames)
    assert (d.accepted, d.code) == (False, "flat_surface")
    st = liveness._Stack(samples)
    ear, mar, par = liveness.action_signals(st)
    span = liveness._action_span("turn_left", ear, mar, par, 0)
    assert span is not None
    (r,), _, _ = liveness.pixel_planarity(frames, samples, st, ["turn_left"], [span[1]], ear, mar, False)
    assert r is not None and r < liveness.PLANE_MIN_TURN / 3


def test_swung_photo_is_refused_by_check_capture() -> None:
    d = faces.check_capture(_swung_photo("person_05"), challenge=["turn_right"], template=None, threshold=0.5)
    assert (d.accepted, d.code) == (False, "flat_surface")


@pytest.mark.parametrize(
    ("clip", "start", "action"),
    [
        # talking with little head motion: the landmarks stay within MIN_PLANAR_RESIDUAL of one
        # plane (0.036), the eye pixels at the blink do not (refused flat_surface before the rule)
        ("clip_10", 52, "blink"),
        ("clip_03", 28, "turn_left"),
    ],
)
def test_live_tuning_window_is_accepted(clip: str, start: int, action: str) -> None:
    frames = _window(clip, start)
    d = faces.check_capture(frames, challenge=[action], template=None, threshold=DEFAULT_THRESHOLD)
    assert d.accepted, d
