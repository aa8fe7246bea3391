import datetime as dt

import pytest
from django.utils import timezone

from guardians import id_numbers, services
from guardians.models import Authorization
from lookups.audit import Actor
from lookups.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def test_registrar_cannot_approve_own(staff, guardian, elder):
    authorization = services.authorization_create(
        actor=Actor.for_user(staff), guardian=guardian, elder=elder, relationship="child", consent_basis="elder_present"
    )
    with pytest.raises(services.NotPermitted):
        services.authorization_approve(actor=Actor.for_user(staff), authorization_id=authorization.pk)
    authorization.refresh_from_db()
    assert authorization.status == Authorization.Status.PENDING


def test_default_end_date_is_twelve_months(staff, guardian, elder):
    authorization = services.authorization_create(
        actor=Actor.for_user(staff), guardian=guardian, elder=elder, relationship="child", consent_basis="elder_present"
    )
    length = authorization.valid_until - authorization.valid_from
    assert dt.timedelta(days=364) < length <= dt.timedelta(days=366)


def test_legal_document_basis_needs_a_reference(staff, guardian, elder):
    with pytest.raises(services.ServiceError, match="reference"):
        services.authorization_create(
            actor=Actor.for_user(staff),
            guardian=guardian,
            elder=elder,
            relationship="legal_guardian",
            consent_basis="legal_document",
        )


def test_other_clinic_staff_cannot_register(other_clinic, guardian, elder):
    outsider = factories.make_staff(other_clinic)
    with pytest.raises(services.NotPermitted):
        services.authorization_create(
            actor=Actor.for_user(outsider),
            guardian=guardian,
            elder=elder,
            relationship="child",
            consent_basis="elder_present",
        )


def test_revoked_cannot_be_approved_or_renewed(authorization, manager, staff):
    services.authorization_revoke(actor=Actor.for_user(manager), authorization_id=authorization.pk, reason="Asked")
    with pytest.raises(services.IllegalState):
        services.authorization_approve(actor=Actor.for_user(staff), authorization_id=authorization.pk)
    with pytest.raises(services.IllegalState):
        services.authorization_renew(
            actor=Actor.for_user(staff),
            authorization_id=authorization.pk,
            valid_until=timezone.now() + dt.timedelta(days=30),
        )


def test_revoke_needs_a_reason(authorization, manager):
    with pytest.raises(services.ServiceError, match="reason"):
        services.authorization_revoke(actor=Actor.for_user(manager), authorization_id=authorization.pk, reason=" ")


def test_authorization_lapses_at_its_end_date(authorization):
    assert authorization.is_active_at(timezone.now())
    assert not authorization.is_active_at(authorization.valid_until)


def test_duplicate_id_number_is_caught_with_the_existing_record(staff, clinic):
    number = factories.valid_id_number()
    first = services.person_register(actor=Actor.for_user(staff), clinic=clinic, full_name="A", id_number=number)
    with pytest.raises(services.DuplicatePerson) as duplicate:
        services.person_register(actor=Actor.for_user(staff), clinic=clinic, full_name="B", id_number=number.lower())
    assert duplicate.value.existing == first


def test_id_number_is_stored_hashed_encrypted_and_masked(staff, clinic):
    number = factories.valid_id_number()
    person = services.person_register(actor=Actor.for_user(staff), clinic=clinic, full_name="A", id_number=number)
    assert person.id_number_masked == id_numbers.mask(number)
    assert number not in person.id_number_hash
    assert number.encode() not in bytes(person.id_number_ciphertext)
    details = AuditEvent.objects.filter(subject=person).values_list("details", flat=True)
    assert all(number not in str(d) for d in details)


def test_invalid_id_number_is_refused(staff, clinic):
    with pytest.raises(id_numbers.InvalidIdNumber):
        services.person_register(
            actor=Actor.for_user(staff), clinic=clinic, full_name="A", id_number="110101194001010010"
        )
