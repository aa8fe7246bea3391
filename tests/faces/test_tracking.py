"""Tracking and geometry helpers: the cheaper forms give the results of the plain numpy ones.

These helpers run on every frame of every capture, so they were rewritten for speed (normal
equations instead of lstsq, a sort instead of np.median, a batched matmul instead of einsum);
the decisions built on them must not move."""

from __future__ import annotations

import numpy as np
import pytest

from lookups.faces import geometry, tracking
from tests.helpers import live_window


def _face_points(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(100, 300, size=(68, 2)).round()


def test_fit_error_is_the_least_squares_affine_fit() -> None:
    rng = np.random.default_rng(1)
    prev = _face_points(rng)
    affine = np.array([[1.02, 0.03], [-0.02, 0.98]])
    pts = prev @ affine.T + [4.0, -3.0] + rng.normal(0, 1.5, size=prev.shape)
    a = np.c_[prev, np.ones(len(prev))]
    coef, *_ = np.linalg.lstsq(a, pts, rcond=None)
    iod = float(np.linalg.norm(prev[36:42].mean(axis=0) - prev[42:48].mean(axis=0)))
    expected = float(np.median(np.linalg.norm(a @ coef - pts, axis=1))) / iod
    assert tracking._fit_error(prev, pts) == pytest.approx(expected, rel=1e-9)


def test_fit_error_on_degenerate_points_does_not_raise() -> None:
    prev = np.full((68, 2), 50.0)  # a predictor collapsed onto one pixel
    pts = np.full((68, 2), 52.0)
    assert np.isfinite(tracking._fit_error(prev, pts))
    line = np.c_[np.arange(68.0), np.arange(68.0)]  # all on one line: a.T @ a is singular
    assert np.isfinite(tracking._fit_error(line, line + 1.0))


def test_carried_box_moves_by_the_median_shift_of_the_rigid_points() -> None:
    assert len(tracking._RIGID) % 2 == 1  # the middle of the sorted shifts is the median
    rng = np.random.default_rng(2)
    ref = _face_points(rng)
    pts = ref + rng.normal(0, 3, size=ref.shape).round()
    pts[tracking._RIGID[:5]] += 40.0  # a few outliers must not drag the box
    dx, dy = np.median(pts[tracking._RIGID] - ref[tracking._RIGID], axis=0)
    box = tracking._carry_box((100, 300, 300, 100), ref, pts, 1000, 1000)
    assert box == (round(100 + dy), round(300 + dx), round(300 + dy), round(100 + dx))


def test_landmark_dict_truncates_like_int() -> None:
    p = np.c_[np.arange(68) + 0.7, -np.arange(68) - 0.7]
    got = tracking._as_dict(p)
    flat = [pt for name in ("chin", "left_eyebrow", "right_eyebrow", "nose_bridge", "nose_tip") for pt in got[name]]
    assert flat == [(int(x), int(y)) for x, y in p[:36]]
    assert all(type(v) is int for pt in flat for v in pt)


def test_batched_homographies_match_the_einsum_form() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 200, size=(6, 68, 2))
    h_true = np.array([[1.1, 0.05, 3.0], [-0.04, 0.95, -2.0], [1e-4, -2e-4, 1.0]])
    exact = geometry._apply_all(np.broadcast_to(h_true, (6, 3, 3)), src)
    h = geometry._homographies(src, exact + rng.normal(0, 0.2, size=src.shape))
    assert np.abs(geometry._apply_all(h, src) - exact).max() < 0.5  # the noise is 0.2 px
    mapped = np.einsum("nij,nkj->nki", h, np.concatenate([src, np.ones((6, 68, 1))], axis=2))
    np.testing.assert_allclose(geometry._apply_all(h, src), mapped[..., :2] / mapped[..., 2:], rtol=1e-12)


def test_brightness_is_measured_on_the_first_frame_only() -> None:
    frames = live_window("clip_06", 47, 5)
    samples = tracking.track_faces(frames).samples
    assert samples[0].brightness > 40.0
    assert all(np.isnan(s.brightness) for s in samples[1:])
