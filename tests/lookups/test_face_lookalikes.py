"""Look-alike attack through the real face-step worker (issue 10 item 6).

The guardian is enrolled as Venus Williams (person_13/01-03). Her sister Serena Williams holds
the guardian's phone and presents her own photo (person_12/05.jpg, not an enrollment photo):
0.400 from the guardian's template, inside the global threshold 0.42. When Serena is enrolled
herself (here: as the elder, from person_12/01-03) the cohort rule refuses her: the photo is
nearer to her own template (0.332). The guardian's own photos still match.
"""

import pytest

from lookups.models import FaceCheck
from tests import factories
from tests.helpers import face_bytes, pass_otp, run_pending_check, start_lookup, submit_face

pytestmark = [pytest.mark.django_db, pytest.mark.faces]


@pytest.fixture
def venus_at_face_step(guardian_client, guardian, staff, authorization, guardian_device, results):
    factories.enroll_face(staff, guardian, [face_bytes(f"person_13/0{i}.jpg") for i in (1, 2, 3)])
    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    return lookup


@pytest.fixture
def serena_enrolled(staff, elder):
    factories.enroll_face(staff, elder, [face_bytes(f"person_12/0{i}.jpg") for i in (1, 2, 3)])
    return elder


def test_enrolled_sister_is_refused_although_within_the_threshold(guardian_client, venus_at_face_step, serena_enrolled):
    submit_face(guardian_client, venus_at_face_step, face_bytes("person_12/05.jpg"))
    check = run_pending_check(venus_at_face_step)
    assert check.outcome == FaceCheck.Outcome.NO_MATCH
    # the global threshold alone would have accepted her: the cohort rule refused
    assert check.distance is not None and check.distance <= check.threshold


def test_the_guardian_still_matches_with_her_sister_enrolled(guardian_client, venus_at_face_step, serena_enrolled):
    submit_face(guardian_client, venus_at_face_step, face_bytes("person_13/04.jpg"))
    assert run_pending_check(venus_at_face_step).outcome == FaceCheck.Outcome.MATCH


def test_a_live_capture_is_decided_with_the_cohort_too(
    guardian_client, guardian, staff, elder, authorization, guardian_device, results, monkeypatch, settings
):
    """The prompted capture (the mean of its chosen frames) goes through the same rule: with
    the clip's person also enrolled under another record from the same frames (the closest
    possible other template),
    the capture is refused as a non-match although it is within the threshold."""
    from lookups import faces
    from lookups.faces.images import load_probe_image
    from lookups.services import face_checks
    from tests.lookups.test_liveness_wiring import live_frames, page_nonce, post_capture

    settings.KINGUARD_FACE_LIVENESS = True
    settings.KINGUARD_FACE_CHALLENGE_FIXED = "blink"
    template = faces.build_template_from_images([load_probe_image(d) for d in live_frames("clip_06", 0, 5)])
    monkeypatch.setattr(face_checks, "face_template_of", lambda person: template)
    # the same enrollment frames under another record: the nearest possible other template
    factories.enroll_face(staff, elder, live_frames("clip_06", 0, 5))
    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    nonce = page_nonce(guardian_client, lookup)
    assert post_capture(guardian_client, lookup, live_frames("clip_06", 47), nonce).status_code == 200
    check = run_pending_check(lookup)
    assert check.outcome == FaceCheck.Outcome.NO_MATCH, (check.reason_code, check.distance)
    assert check.distance is not None and check.distance <= check.threshold
