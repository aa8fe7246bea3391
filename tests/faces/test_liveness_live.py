"""check_capture on real live clips (genuine side) and on fakes made from stills (issue 11).

Runs the tracked path (detect once, predict landmarks in the carried box, 1 embedded frame) on a few
3.5 s windows of ``../shared/faces/live``; skipped when the data is missing unless CI=true.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookups import faces
from lookups.faces import tracking
from lookups.faces.burst import y4m_frames
from lookups.faces.matching import DEFAULT_THRESHOLD
from tests.helpers import live_window, require_face_files


def _root() -> Path:
    return require_face_files("live/clip_06/001.jpg", "camera/person_01.y4m")


def _window(clip: str, start: int, n: int = 35) -> list[np.ndarray]:
    _root()
    return live_window(clip, start, n)


def _check(frames: list[np.ndarray], *actions: str) -> faces.CaptureDecision:
    return faces.check_capture(frames, challenge=actions, template=None, threshold=DEFAULT_THRESHOLD)


@pytest.mark.parametrize(("clip", "start", "action"), [("clip_06", 47, "blink"), ("clip_12", 26, "open_mouth")])
def test_genuine_clip_performing_the_action_is_accepted(clip: str, start: int, action: str) -> None:
    d = _check(_window(clip, start), action)
    assert d.accepted, d
    assert d.frames_used == faces.liveness.BEST_FRAMES == 1


def test_genuine_clip_not_performing_the_action_is_refused() -> None:
    d = _check(_window("clip_13", 0), "turn_left")
    assert (d.accepted, d.code) == (False, "challenge_not_done")


def test_moved_still_is_flat() -> None:
    still = Image.fromarray(_window("clip_13", 0, 1)[0])
    w, h = still.size
    frames = []
    for i in range(30):
        t = i / 29
        s = 1.0 + 0.1 * np.sin(np.pi * t)
        dx, dy = 20 * np.sin(2 * np.pi * t), 10 * np.sin(4 * np.pi * t)
        moved = still.transform(
            (w, h), Image.Transform.AFFINE, (1 / s, 0, -dx, 0, 1 / s, -dy), Image.Resampling.BILINEAR
        )
        frames.append(np.asarray(moved))
    d = _check(frames, "blink")
    assert (d.accepted, d.code) == (False, "flat_surface")


@pytest.mark.parametrize("action", ["open_mouth", "blink"])
def test_splice_of_two_people_is_refused(action: str) -> None:
    # the two faces sit at about the same place in the frame, so the tracker follows the cut and
    # the landmarks line up; the pixels at the cut do not (CUT_PIXEL_ABS)
    frames = _window("clip_06", 0, 15) + _window("clip_11", 0, 15)
    d = _check(frames, action)
    assert (d.accepted, d.code) == (False, "not_continuous")


def test_zoom_pan_camera_clip_is_flat() -> None:
    frames = y4m_frames(_root() / "camera" / "person_01.y4m")
    d = _check(frames, "blink")
    assert (d.accepted, d.code) == (False, "flat_surface")


def _swung(still: Image.Image, t: float) -> Image.Image:
    """``still`` swung about the vertical axis by 30 degrees * sin(2 pi t) (a print in the hand)."""
    from lookups.faces import liveness

    w, h = still.size
    yaw = np.radians(30) * np.sin(2 * np.pi * t)
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    x, z = corners[:, 0] * np.cos(yaw), -corners[:, 0] * np.sin(yaw)
    f = 2.0 * w
    quad = np.c_[w / 2 + f * x / (f + z), h / 2 + f * corners[:, 1] / (f + z)]
    src = corners + [w / 2, h / 2]
    hm = liveness._homography(quad, src)
    hm = hm / hm[2, 2]
    return still.transform((w, h), Image.Transform.PERSPECTIVE, tuple(hm.ravel()[:8]), Image.Resampling.BILINEAR)


@pytest.mark.parametrize("action", ["turn_left", "turn_right"])
def test_swung_still_is_refused_for_a_turn(action: str) -> None:
    still = Image.fromarray(_window("clip_13", 0, 1)[0])
    frames = [np.asarray(_swung(still, i / 29)) for i in range(30)]
    d = _check(frames, action)
    assert (d.accepted, d.code) == (False, "flat_surface")


def test_slideshow_of_stills_is_refused_for_a_turn() -> None:
    # six frames each of five frames of a live clip taken 1 s apart: still pictures of the
    # person in different poses, cut from one to the next
    stills = [_window("clip_03", 10 * k, 1)[0] for k in range(5)]
    frames = [stills[i // 6] for i in range(30)]
    for action in ("turn_left", "turn_right"):
        d = _check(frames, action)
        assert not d.accepted and d.code in ("not_continuous", "challenge_not_done"), d


def test_capture_that_goes_dark_after_the_first_frame_is_refused_too_dark() -> None:
    # the first frame passes the quality gate; the light then fades to a quarter over 1 s, so
    # the frame that would be embedded is too dark to decide on: retake, never a decision
    window = _window("clip_06", 47)
    faded = [window[0]] + [
        (frame * (1.0 - 0.75 * min(1.0, i / 10))).astype(np.uint8) for i, frame in enumerate(window[1:], 1)
    ]
    d = _check(faded, "blink")
    assert (d.accepted, d.code) == (False, "too_dark")
    assert d.frames_used == 1


def test_unmeasured_quality_of_a_tracked_frame_refuses_and_never_passes() -> None:
    # the tracker measures light on frame 0 only and focus nowhere: a caller of decide_samples
    # that gives neither the frames nor the measures must get a refusal, not a skipped gate
    window = _window("clip_06", 47)
    samples = tracking.track_faces(window).samples
    kwargs = {"challenge": ["blink"], "template": None, "threshold": DEFAULT_THRESHOLD}
    assert faces.decide_samples(samples, **kwargs).code == "too_dark"
    lit = faces.decide_samples(samples, brightness=lambda i: 100.0, **kwargs)
    assert (lit.accepted, lit.code) == (False, "too_blurry")
    # with the frames, the values are measured on the picked frame and the capture passes
    assert faces.decide_samples(samples, frames=window, **kwargs).accepted
