"""factory_boy factories. People get valid GB 11643 ID numbers through the services."""

import itertools

import factory
from django.utils import timezone

from guardians import id_numbers, services
from guardians.models import Clinic, StaffMembership, User
from lookups.audit import Actor

_serial = itertools.count(1)


def valid_id_number() -> str:
    n = next(_serial)
    return id_numbers.make_valid(f"110101{1940 + n % 60:04d}0101{n % 1000:03d}")


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Clinic {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


def make_staff(clinic: Clinic, role: str = StaffMembership.Role.STAFF, **kwargs) -> User:
    user = UserFactory(is_staff=True, **kwargs)
    StaffMembership.objects.create(user=user, clinic=clinic, role=role)
    return user


def make_person(staff: User, clinic: Clinic, name: str, *, elder=False, guardian=False, login=False):
    person = services.person_register(
        actor=Actor.for_user(staff),
        clinic=clinic,
        full_name=name,
        id_number=valid_id_number(),
        is_elder=elder,
        is_guardian=guardian,
    )
    if login:
        services.person_create_login(
            actor=Actor.for_user(staff),
            person=person,
            username=f"{name.lower().replace(' ', '.')}.{person.pk}",
            password="correct horse battery",
        )
        person.refresh_from_db()
    return person


def make_active_authorization(registrar: User, approver: User, guardian, elder, **kwargs):
    authorization = services.authorization_create(
        actor=Actor.for_user(registrar),
        guardian=guardian,
        elder=elder,
        relationship="child",
        consent_basis="elder_present",
        **kwargs,
    )
    return services.authorization_approve(actor=Actor.for_user(approver), authorization_id=authorization.pk)


def make_result(staff: User, elder, **overrides):
    from lookups.services import result_record

    now = timezone.now()
    values = {
        "kind": "nucleic_acid",
        "sampled_at": now - timezone.timedelta(days=1),
        "site": "Sampling point 1",
        "lab": "Central Lab",
        "result": "Negative",
        "reported_at": now - timezone.timedelta(hours=2),
    }
    values.update(overrides)
    return result_record(actor=Actor.for_user(staff), elder=elder, **values)


def enroll_face(staff: User, person, images=(), *, samples=None, consent_text: str = "Test consent."):
    """Record the biometric consent, then enroll the face under it (both through the services)."""
    actor = Actor.for_user(staff)
    services.face_consent_record(actor=actor, person=person, consent_text=consent_text, given_by="person")
    return services.face_enroll(actor=actor, person=person, images=images, samples=samples)
