"""Flat-surface and continuity rules of lookups.faces on synthetic landmarks (no models)."""

from __future__ import annotations

import numpy as np

from lookups import faces
from lookups.faces import liveness
from lookups.faces.detection import FaceSample

FEATURES = {
    "chin": 17,
    "left_eyebrow": 5,
    "right_eyebrow": 5,
    "nose_bridge": 4,
    "nose_tip": 5,
    "left_eye": 6,
    "right_eye": 6,
    "top_lip": 12,
    "bottom_lip": 12,
}


def _face(rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for name, n in FEATURES.items():
        out[name] = rng.uniform(100, 300, (n, 2))
    out["left_eye"] = np.array([[150, 150], [160, 145], [170, 145], [180, 150], [170, 155], [160, 155]], float)
    out["right_eye"] = out["left_eye"] + [80, 0]
    return out


def _sample(lm: dict[str, np.ndarray], box: tuple[int, int, int, int] = (100, 300, 300, 100)) -> FaceSample:
    return FaceSample(
        embedding=np.zeros(128),
        box=box,
        face_height_px=box[2] - box[0],
        brightness=100.0,
        sharpness=100.0,
        landmarks={k: [(float(x), float(y)) for x, y in v] for k, v in lm.items()},
    )


def _warp(lm: dict[str, np.ndarray], h: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for k, v in lm.items():
        p = np.c_[v, np.ones(len(v))] @ h.T
        out[k] = p[:, :2] / p[:, 2:]
    return out


def test_photo_tilted_in_the_hand_is_planar() -> None:
    rng = np.random.default_rng(1)
    base = _face(rng)
    frames = [base]
    for t in np.linspace(0, 1, 20):
        h = np.array([[1 + 0.1 * t, 0.05 * t, 20 * t], [-0.03 * t, 0.9, 5 * t], [4e-4 * t, -2e-4 * t, 1.0]])
        frames.append(_warp(base, h))
    plan = faces.capture_planarity([_sample(f) for f in frames])
    assert plan < faces.MIN_PLANAR_RESIDUAL / 3


def test_real_deformation_is_not_planar() -> None:
    rng = np.random.default_rng(2)
    base = _face(rng)
    blink = {k: v.copy() for k, v in base.items()}
    for eye in ("left_eye", "right_eye"):
        c = blink[eye].mean(axis=0)
        blink[eye][:, 1] = c[1] + (blink[eye][:, 1] - c[1]) * 0.1  # eyes close
    blink["bottom_lip"] = blink["bottom_lip"] + [0, 25]  # mouth opens
    plan = faces.capture_planarity([_sample(base), _sample(base), _sample(blink)])
    assert plan > faces.MIN_PLANAR_RESIDUAL


def test_box_jump_is_a_break() -> None:
    rng = np.random.default_rng(3)
    lm = _face(rng)
    steady = [_sample(lm, (100 + i, 300 + i, 300 + i, 100 + i)) for i in range(6)]
    assert liveness._continuity_break(steady) is None
    jumped = steady[:3] + [_sample(lm, (100, 620, 300, 420))] + steady[3:]
    assert liveness._continuity_break(jumped) == 3
    rescaled = steady[:3] + [_sample(lm, (100, 420, 400, 100))]
    assert liveness._continuity_break(rescaled) == 3


def test_cut_to_another_photo_is_a_break() -> None:
    a, b = _face(np.random.default_rng(4)), _face(np.random.default_rng(5))
    frames = [_sample(a)] * 3 + [_sample(b)] * 3
    assert liveness._continuity_break(frames) == 3


# --- turns: a slideshow step is not a turn; landmark noise is not a trajectory -------------


def _turn_capture(steps: list[float], jitter: float = 0.0) -> list[FaceSample]:
    """35 frames of one face whose nose moves off the face plane by ``steps[i]`` inter-ocular
    distances along the eye axis (a head turn seen in 2-D), with optional alternating noise."""
    base = _face(np.random.default_rng(7))
    iod = 80.0  # the eyes of _face are 80 px apart
    out = []
    for i, off in enumerate(steps):
        lm = {k: v.copy() for k, v in base.items()}
        noise = jitter * (1 if i % 2 else -1)
        for part in ("nose_bridge", "nose_tip"):
            lm[part] = lm[part] + [(off + noise) * iod, 0.0]
        out.append(_sample(lm))
    return out


def _decide(samples: list[FaceSample], *challenge: str) -> faces.CaptureDecision:
    return faces.decide_samples(
        samples,
        challenge=challenge,
        template=None,
        threshold=0.5,
        embed_many=lambda idx: np.zeros((len(idx), 128)),
        sharpness=lambda i: 100.0,
    )


def test_turn_through_the_poses_in_between_is_a_turn() -> None:
    ramp = [0.0] * 10 + [0.06 * k for k in range(1, 5)] + [0.24] * 21
    assert _decide(_turn_capture(ramp), "turn_left").accepted
    assert _decide(_turn_capture([-v for v in ramp]), "turn_right").accepted


def test_slideshow_step_is_not_a_turn() -> None:
    # two photos: the second one's nose sits 0.24 IOD off the first's plane, from one frame to
    # the next (a cut), then stays: the parallax steps of a slideshow, not a head turning
    step = [0.0] * 12 + [0.24] * 23
    d = _decide(_turn_capture(step), "turn_left")
    assert (d.accepted, d.code) == (False, "challenge_not_done")
    assert liveness._continuity_break(_turn_capture(step)) is None  # not caught as a cut: the step rule does it


def test_landmark_jitter_on_a_swung_photo_is_not_continuous() -> None:
    # a photo swung in the hand: the landmark model's nose jumps back and forth from frame to
    # frame (person_26 in the bench); as large as a turn, but no trajectory
    ramp = [0.0] * 10 + [0.06 * k for k in range(1, 5)] + [0.24] * 21
    d = _decide(_turn_capture(ramp, jitter=0.05), "turn_left")
    assert (d.accepted, d.code) == (False, "not_continuous")
    assert liveness.turn_jitter(liveness.action_signals(_turn_capture(ramp, jitter=0.05))[2]) > liveness.MAX_TURN_JITTER


def _texture(seed: int, size: int = 400) -> np.ndarray:
    """A smooth random grey texture (the 'face' pixels), RGB uint8."""
    rng = np.random.default_rng(seed)
    g = rng.normal(0, 1, (size // 8, size // 8))
    g = np.kron(g, np.ones((8, 8)))
    g = (g - g.min()) / (g.max() - g.min()) * 200 + 20
    return np.repeat(g[..., None], 3, axis=2).astype(np.uint8)


def _moving_frames(images: list[np.ndarray], noise_seed: int = 0) -> tuple[list[np.ndarray], list[FaceSample]]:
    """The picture shifted 2 px per frame (landmarks shifted with it), sensor noise added."""
    rng = np.random.default_rng(noise_seed)
    lm = _face(np.random.default_rng(7))
    frames, samples = [], []
    for i, img in enumerate(images):
        shifted = np.roll(img, 2 * i, axis=1).astype(np.float64) + rng.normal(0, 3, img.shape)
        frames.append(np.clip(shifted, 0, 255).astype(np.uint8))
        samples.append(_sample({k: v + [2 * i, 0] for k, v in lm.items()}, (100, 300 + 2 * i, 300, 100 + 2 * i)))
    return frames, samples


def test_moving_picture_is_not_a_photometric_cut() -> None:
    frames, samples = _moving_frames([_texture(1)] * 8)
    assert not liveness.photometric_cut(frames, samples)


def test_slideshow_cut_with_aligned_landmarks_is_a_photometric_cut() -> None:
    # another photo whose landmarks line up exactly: the landmark rules see no cut, the pixels do
    frames, samples = _moving_frames([_texture(1)] * 4 + [_texture(2)] * 4)
    steps = liveness.photometric_steps(
        [f.mean(axis=2) for f in frames], [s.box for s in samples], liveness._Stack(samples).all
    )
    assert int(np.argmax(steps)) == 3
    assert liveness.photometric_cut(frames, samples)
    assert liveness._continuity_break(samples) is None
    d = faces.decide_samples(samples, challenge=["blink"], template=None, threshold=0.5, frames=frames)
    assert d.code == "not_continuous"


def test_embedded_frame_is_the_one_where_the_last_action_completes() -> None:
    # a turn that completes at frame ~15 of 35: the one embedded frame must come from the frames
    # right around it, not from the calm start or end of the capture (where a relative doing the
    # actions could hold up the guardian's photo), even though those are nearer the start pose
    ramp = [0.0] * 10 + [0.06 * k for k in range(1, 5)] + [0.24] * 4 + [0.0] * 17
    embedded: list[list[int]] = []

    def embed_many(idx: list[int]) -> np.ndarray:
        embedded.append(list(idx))
        return np.zeros((len(idx), 128))

    d = faces.decide_samples(
        _turn_capture(ramp),
        challenge=["turn_left"],
        template=None,
        threshold=0.5,
        embed_many=embed_many,
        sharpness=lambda i: 100.0,
    )
    assert d.accepted and d.frames_used == 1
    (picked,) = embedded
    # past TURN_DELTA (0.08) from frame 11, held TURN_HOLD = 2 frames: the turn completes at 12;
    # frames 0-9 and 18-34 are all at the start pose, so "the best frame of the capture" would be 0
    end = 12
    assert end - liveness.PICK_BEFORE <= picked[0] <= end + liveness.PICK_AFTER
    assert picked[0] >= 18


# --- two actions in order: the second begins after the first peaked ------------------------


def _mouth(open_px: float) -> dict[str, np.ndarray]:
    """The lips in the layout of ``face_recognition.face_landmarks``: corners 60 px apart, the
    inner lips 4 px apart plus ``open_px`` (mouth aspect ratio 0.07 closed, 0.48 at 25 px)."""
    q = np.zeros((68, 2))
    q[48], q[54] = (180, 260), (240, 260)
    q[49:54] = [(190 + 10 * k, 252) for k in range(5)]
    q[55:60] = [(230 - 10 * k, 270 + open_px) for k in range(5)]
    q[60], q[64] = (185, 260), (235, 260)
    q[61:64] = [(200 + 10 * k, 258) for k in range(3)]
    q[65:68] = [(220 - 10 * k, 262 + open_px) for k in range(3)]
    return {
        "top_lip": np.array([*q[48:55], q[64], q[63], q[62], q[61], q[60]]),
        "bottom_lip": np.array([*q[54:60], q[48], q[60], q[67], q[66], q[65], q[64]]),
    }


def _squint(eye: np.ndarray, open_part: float) -> np.ndarray:
    """The 6 points of an eye at ``open_part`` of its height (about its centre)."""
    c = eye.mean(axis=0)
    out = eye.astype(float)
    out[:, 1] = c[1] + (out[:, 1] - c[1]) * open_part
    return out


def _eyes_and_mouth(eye_open: list[float], mouth_px: list[float]) -> list[FaceSample]:
    """One face per frame: the eyes at ``eye_open[i]`` of their open height (1 = open, eye
    aspect ratio 0.33) and the mouth open by ``mouth_px[i]``; nothing else moves."""
    base = _face(np.random.default_rng(11))
    out = []
    for eye, mouth in zip(eye_open, mouth_px, strict=True):
        lm = {k: v.copy() for k, v in base.items()}
        for name in ("left_eye", "right_eye"):
            lm[name] = _squint(lm[name], eye)
        lm.update(_mouth(mouth))
        out.append(_sample(lm))
    return out


def _only_in_order(samples: list[FaceSample], first: str, second: str) -> None:
    """Accepted asked ``first, second``; refused ``challenge_not_done`` asked the reverse."""
    assert _decide(samples, first, second).accepted
    d = _decide(samples, second, first)
    assert (d.accepted, d.code) == (False, "challenge_not_done")


def test_second_action_may_begin_while_the_first_ends() -> None:
    # eyes closed at frames 10-11 and slow to reopen (below 3/4 of open until frame 17); the
    # mouth opens at 13-15, after the closed eyes, before they are fully open again
    eyes = [1.0] * 10 + [0.3, 0.3] + [0.6] * 5 + [1.0] * 18
    mouth = [0.0] * 13 + [25.0] * 3 + [0.0] * 19
    _only_in_order(_eyes_and_mouth(eyes, mouth), "blink", "open_mouth")  # reversed: the blink began first


def test_actions_in_the_wrong_order_are_refused() -> None:
    # the mouth opens and closes at 5-7, the eyes blink at 20-21: asked blink then open mouth
    eyes = [1.0] * 20 + [0.3, 0.3] + [1.0] * 13
    mouth = [0.0] * 5 + [25.0] * 3 + [0.0] * 27
    _only_in_order(_eyes_and_mouth(eyes, mouth), "open_mouth", "blink")


def test_a_mouth_already_open_at_the_blink_did_not_open_after_it() -> None:
    # the mouth opens at 5 and stays open through the blink at 15-16 and after it: it opened
    # before the blink, so "blink, then open your mouth" was not done (a replay of someone who
    # blinked while talking must not answer both orders)
    eyes = [1.0] * 15 + [0.3, 0.3] + [1.0] * 18
    mouth = [0.0] * 5 + [25.0] * 20 + [0.0] * 10
    _only_in_order(_eyes_and_mouth(eyes, mouth), "open_mouth", "blink")


def test_a_head_turned_before_the_blink_did_not_turn_after_it() -> None:
    # the head turns left at frames 4-8 and stays turned through a blink at 20-21
    turn = [0.0] * 4 + [0.06 * k for k in range(1, 5)] + [0.24] * 27
    samples = _turn_capture(turn)
    for i in (20, 21):
        for name in ("left_eye", "right_eye"):
            pts = _squint(np.asarray(samples[i].landmarks[name], dtype=float), 0.3)
            samples[i].landmarks[name] = [(float(x), float(y)) for x, y in pts]
    _only_in_order(samples, "turn_left", "blink")


def test_a_one_frame_mouth_spike_is_not_an_open_mouth() -> None:
    # the landmark model jumping on one frame (a print bent and nodded in front of the camera)
    # is no mouth opening; the same opening held for two frames (0.2 s) is
    eyes = [1.0] * 35
    spike = [0.0] * 12 + [25.0] + [0.0] * 22
    d = _decide(_eyes_and_mouth(eyes, spike), "open_mouth")
    assert (d.accepted, d.code) == (False, "challenge_not_done")
    held = [0.0] * 12 + [25.0] * liveness.MOUTH_HOLD + [0.0] * (23 - liveness.MOUTH_HOLD)
    assert _decide(_eyes_and_mouth(eyes, held), "open_mouth").accepted
