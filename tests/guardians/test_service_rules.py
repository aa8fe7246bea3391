"""Attacks on the services directly (no form, no view): the same-clinic rule for an
authorization and the biometric-consent rule for a face enrollment live in the services."""

import datetime as dt

import pytest
from django.utils import timezone

from guardians import services
from guardians.models import Authorization, FaceConsent, FaceEnrollment
from lookups.audit import Actor
from lookups.models import AuditEvent
from tests import factories
from tests.helpers import face_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_staff(other_clinic):
    return factories.make_staff(other_clinic)


@pytest.fixture
def other_elder(other_staff, other_clinic):
    return factories.make_person(other_staff, other_clinic, "Wang Fang", elder=True)


@pytest.fixture
def other_guardian(other_staff, other_clinic):
    return factories.make_person(other_staff, other_clinic, "Zhao Lei", guardian=True)


def _create(actor_user, guardian, elder):
    return services.authorization_create(
        actor=Actor.for_user(actor_user),
        guardian=guardian,
        elder=elder,
        relationship=Authorization.Relationship.CHILD,
        consent_basis=Authorization.ConsentBasis.ELDER_PRESENT,
    )


def test_authorization_for_another_clinics_elder_is_refused(staff, guardian, other_elder):
    with pytest.raises(services.NotPermitted):
        _create(staff, guardian, other_elder)
    assert not Authorization.objects.exists()


def test_staff_of_the_elders_clinic_cannot_attach_another_clinics_guardian(other_staff, guardian, other_elder):
    """The actor may manage authorizations at the elder's clinic, but the guardian is elsewhere."""
    with pytest.raises(services.NotPermitted, match="same clinic"):
        _create(other_staff, guardian, other_elder)
    with pytest.raises(services.NotPermitted, match="same clinic"):
        services.authorization_check_request(
            actor=Actor.for_user(other_staff),
            guardian=guardian,
            elder=other_elder,
            consent_basis=Authorization.ConsentBasis.ELDER_PRESENT,
        )
    assert not Authorization.objects.exists()


def test_same_clinic_authorization_is_still_accepted(staff, guardian, elder):
    created = _create(staff, guardian, elder)
    assert created.status == Authorization.Status.PENDING and created.clinic_id == elder.clinic_id


def test_face_enroll_without_consent_is_refused(staff, guardian):
    before = AuditEvent.objects.count()
    with pytest.raises(services.ServiceError, match="consent"):
        services.face_enroll(actor=Actor.for_user(staff), person=guardian, images=[face_bytes("person_02/01.jpg")])
    assert not FaceEnrollment.objects.exists()
    assert AuditEvent.objects.count() == before


def test_face_enroll_with_a_used_expired_or_foreign_consent_is_refused(staff, guardian, elder):
    actor = Actor.for_user(staff)
    images = [face_bytes("person_02/01.jpg")]
    samples = services.face_samples_from_images(images)
    foreign = services.face_consent_record(actor=actor, person=elder, consent_text="ok", given_by="person")
    with pytest.raises(services.ServiceError, match="consent"):
        services.face_enroll(actor=actor, person=guardian, samples=samples, consent_id=foreign.pk)
    expired = services.face_consent_record(actor=actor, person=guardian, consent_text="ok", given_by="person")
    FaceConsent.objects.filter(pk=expired.pk).update(
        recorded_at=timezone.now() - dt.timedelta(minutes=services.FACE_CONSENT_VALID_MINUTES + 1)
    )
    with pytest.raises(services.ServiceError, match="consent"):
        services.face_enroll(actor=actor, person=guardian, samples=samples)
    with pytest.raises(services.ServiceError, match="minutes ago"):
        services.face_enroll(actor=actor, person=guardian, samples=samples, consent_id=expired.pk)
    assert not FaceEnrollment.objects.exists()
    current = services.face_consent_record(actor=actor, person=guardian, consent_text="I agree.", given_by="person")
    enrollment = services.face_enroll(actor=actor, person=guardian, samples=samples)
    assert enrollment.consent_id == current.pk and enrollment.consent_text == "I agree."
    with pytest.raises(services.ServiceError, match="consent"):  # one consent, one enrollment
        services.face_enroll(actor=actor, person=guardian, samples=samples, consent_id=current.pk)
    with pytest.raises(services.ServiceError, match="consent"):
        services.face_enroll(actor=actor, person=guardian, samples=samples)


def test_face_enroll_for_another_clinics_person_is_refused(staff, other_guardian):
    services_actor = Actor.for_user(staff)
    with pytest.raises(services.NotPermitted):
        services.face_consent_record(actor=services_actor, person=other_guardian, consent_text="ok", given_by="person")
    with pytest.raises(services.NotPermitted):
        services.face_enroll(actor=services_actor, person=other_guardian, images=[face_bytes("person_02/01.jpg")])
