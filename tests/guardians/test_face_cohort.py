"""guardians.services.face_cohort_of: the other enrolled templates of the match rule."""

import numpy as np
import pytest

from guardians import services
from guardians.models import FaceEnrollment
from tests import factories

pytestmark = pytest.mark.django_db


class _Sample:
    def __init__(self, embedding):
        self.embedding = embedding


def _enroll(staff, person, value: float):
    return factories.enroll_face(staff, person, samples=[_Sample(np.full(128, value))])


def test_cohort_is_every_other_enrolled_template(staff, guardian, elder):
    assert services.face_cohort_of(guardian) is None
    _enroll(staff, guardian, 0.1)
    assert services.face_cohort_of(guardian) is None  # never the person's own template
    _enroll(staff, elder, 0.2)
    cohort = services.face_cohort_of(guardian)
    assert cohort.shape == (1, 128) and np.allclose(cohort[0], 0.2)
    assert np.allclose(services.face_cohort_of(elder)[0], 0.1)


def test_templates_of_another_model_version_are_not_in_the_cohort(staff, guardian, elder):
    _enroll(staff, guardian, 0.1)
    _enroll(staff, elder, 0.2)
    FaceEnrollment.objects.filter(person=elder).update(model_version="other-model")
    assert services.face_cohort_of(guardian) is None


def test_an_unreadable_template_is_left_out_not_fatal(staff, guardian, elder, clinic):
    third = factories.make_person(staff, clinic, "Third Person")
    _enroll(staff, guardian, 0.1)
    _enroll(staff, elder, 0.2)
    _enroll(staff, third, 0.3)
    FaceEnrollment.objects.filter(person=elder).update(template_ciphertext=b"not a fernet token")
    cohort = services.face_cohort_of(guardian)
    assert cohort.shape == (1, 128) and np.allclose(cohort[0], 0.3)
