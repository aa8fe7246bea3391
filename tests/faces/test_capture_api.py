"""Fast tests of the stable lookups.faces API (no models needed)."""

import random

import numpy as np

from lookups import faces


def test_choose_challenge_two_distinct_actions_in_random_order():
    seen = {faces.choose_challenge(random.Random(seed)) for seed in range(200)}
    assert all(a != b and {a, b} <= set(faces.ACTIONS) for a, b in seen)
    assert len(seen) == 12


def test_unknown_action_is_refused_not_raised():
    d = faces.check_capture([np.zeros((10, 10, 3), np.uint8)], challenge=["smile"], template=None, threshold=0.4)
    assert not d.accepted and d.code == "bad_challenge"


def test_blank_frames_refused_no_face():
    d = faces.check_capture([np.zeros((120, 120, 3), np.uint8)] * 8, challenge=["blink"], template=None, threshold=0.4)
    assert not d.accepted and d.code in ("no_face", "low_quality")


def test_capture_too_short_to_show_an_action_is_a_retake_not_a_liveness_failure():
    for n in (0, 1, faces.liveness.MIN_FRAMES - 1):
        d = faces.check_capture(
            [np.zeros((120, 120, 3), np.uint8)] * n, challenge=["blink"], template=None, threshold=0.4
        )
        assert (d.accepted, d.code) == (False, "too_few_frames"), n
