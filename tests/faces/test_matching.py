"""The match rule (lookups.faces.matching): threshold and cohort margin, on synthetic vectors."""

import numpy as np
import pytest

from lookups.faces.matching import COHORT_MARGIN, DEFAULT_THRESHOLD, cohort_distance, compare_embedding, decide


def _unit(i: int, scale: float = 1.0) -> np.ndarray:
    v = np.zeros(128)
    v[i] = scale
    return v


TEMPLATE = np.zeros(128)


def test_within_threshold_and_no_cohort_matches():
    verdict = compare_embedding(TEMPLATE, _unit(0, 0.40), threshold=0.42)
    assert verdict.matched and verdict.cohort_distance is None
    assert verdict.distance == pytest.approx(0.40)


def test_beyond_threshold_never_matches_even_with_a_far_cohort():
    cohort = np.stack([_unit(1, 5.0)])
    assert not compare_embedding(TEMPLATE, _unit(0, 0.43), threshold=0.42, cohort=cohort).matched


def test_probe_nearer_to_another_enrolled_template_is_refused():
    """The enrolled sister: inside the threshold of the claimed template, nearer to her own."""
    probe = _unit(0, 0.40)
    sister = _unit(0, 0.70)  # 0.30 from the probe
    verdict = compare_embedding(TEMPLATE, probe, threshold=0.42, cohort=np.stack([sister]))
    assert not verdict.matched
    assert verdict.cohort_distance == pytest.approx(0.30)


def test_the_margin_is_required_not_just_nearer():
    probe = _unit(0, 0.30)
    # other template just farther than the claimed one, but by less than the margin
    other = _unit(0, 0.30 + 0.30 + COHORT_MARGIN / 2)
    assert not compare_embedding(TEMPLATE, probe, threshold=0.42, cohort=np.stack([other])).matched
    farther = _unit(0, 0.30 + 0.30 + COHORT_MARGIN * 2)
    assert compare_embedding(TEMPLATE, probe, threshold=0.42, cohort=np.stack([farther])).matched


def test_decide_is_the_rule():
    assert decide(0.40, 0.42, None)
    assert not decide(0.43, 0.42, None)
    assert decide(0.30, 0.42, 0.30 + COHORT_MARGIN)
    assert not decide(0.30, 0.42, 0.30 + COHORT_MARGIN - 1e-6)


@pytest.mark.parametrize("cohort", [np.zeros((2, 64)), np.full((1, 128), np.nan), np.zeros(128)])
def test_bad_cohorts_are_refused(cohort):
    with pytest.raises(ValueError):
        compare_embedding(TEMPLATE, _unit(0, 0.1), cohort=cohort)


def test_empty_cohort_is_no_cohort():
    assert cohort_distance(np.zeros((0, 128)), _unit(0)) is None
    assert compare_embedding(TEMPLATE, _unit(0, 0.1), cohort=[]).matched
    assert compare_embedding(TEMPLATE, _unit(0, 0.1)).threshold == DEFAULT_THRESHOLD


def test_nearest_pairs_count_the_threshold_alone_and_the_shipped_rule():
    from lookups.faces.calibration import nearest_identity_pairs, pairs_fmr

    templates = {"a": np.zeros(128), "b": _unit(0, 0.5), "c": _unit(1, 3.0)}
    photos = {
        # b's photos: 0.40 from a (inside 0.42) but 0.10 from b's own template
        "b": [("b/1.jpg", _unit(0, 0.40)), ("b/2.jpg", _unit(0, 0.6))],
        "a": [("a/1.jpg", _unit(0, 0.05))],
        "c": [("c/1.jpg", _unit(1, 3.0))],
    }
    pairs = {p["identity"]: p for p in nearest_identity_pairs(templates, photos, 0.42)}
    assert pairs["a"]["nearest"] == "b"
    assert pairs["a"]["false_matches"] == 1  # the threshold alone lets b/1 in
    assert pairs["a"]["false_matches_cohort"] == 0  # b is enrolled: refused
    summary = pairs_fmr(list(pairs.values()))
    assert summary["false_matches"] >= 1 and summary["false_matches_cohort"] == 0


def _live(clip: str, idx) -> list[np.ndarray]:
    from lookups.faces.calibration import default_faces_dir
    from lookups.faces.images import load_probe_image

    files = sorted((default_faces_dir() / "live" / clip).glob("*.jpg"))
    if not files:
        pytest.skip("live clips not found (set KINGUARD_FACES_DIR)")
    return [load_probe_image(files[i].read_bytes()) for i in idx]


@pytest.mark.faces
def test_the_capture_decision_applies_the_cohort_rule():
    """One decision per capture (mean of the chosen frames), with the cohort: a nearer other
    enrolled template refuses a genuine capture as ``no_match``; a far one does not."""
    from lookups import faces

    template = faces.build_template_from_images(_live("clip_06", (0, 10, 20, 30, 40)))
    other = faces.build_template_from_images(_live("clip_13", (0, 10, 20)))
    frames = _live("clip_06", range(47, 82))
    kwargs = {"challenge": ("blink",), "template": template, "threshold": DEFAULT_THRESHOLD}
    accepted = faces.check_capture(frames, cohort=np.stack([other]), **kwargs)
    assert accepted.accepted, accepted
    # the same person enrolled twice is the closest possible "other" template: refused
    refused = faces.check_capture(frames, cohort=np.stack([other, template]), **kwargs)
    assert not refused.accepted and refused.code == "no_match"
    assert refused.distance == pytest.approx(accepted.distance)
