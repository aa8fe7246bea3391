"""Writes about who may act for whom. Every function audits in the same transaction.

Callers (views, admin, commands) pass the acting ``Actor`` explicitly. Authorization state
changes lock the row (``select_for_update`` inside ``atomic``) and refuse illegal starting
states, so two staff members acting at once cannot both succeed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from lookups.audit import Actor, audit_record
from lookups.oversight.notices import notice_authorization_changed

from . import crypto, id_numbers, permissions
from .models import Authorization, Clinic, FaceEnrollment, Person

if TYPE_CHECKING:
    from .models import User


class ServiceError(Exception):
    """A refused request. ``str()`` is a clear message that may be shown to staff."""


class DuplicatePerson(ServiceError):
    def __init__(self, existing: Person):
        super().__init__("A person with this ID number is already registered.")
        self.existing = existing


class NotPermitted(ServiceError):
    pass


class IllegalState(ServiceError):
    pass


def _require_staff(actor: Actor, clinic: Clinic | int) -> None:
    if actor.user is None or not permissions.is_staff_of(actor.user, clinic):
        raise NotPermitted("You are not staff of this clinic.")


def _require_manager_rights(actor: Actor, clinic: Clinic | int) -> None:
    if actor.user is None or not permissions.can_manage_authorizations(actor.user, clinic):
        raise NotPermitted("Only clinic staff or managers of this clinic may change authorizations.")


# --- people -------------------------------------------------------------------------------


def person_register(
    *,
    actor: Actor,
    clinic: Clinic,
    full_name: str,
    id_number: str,
    is_elder: bool = False,
    is_guardian: bool = False,
    phone: str = "",
    notify_email: str = "",
    user: User | None = None,
) -> Person:
    """Register a person after an in-person ID check. Raises InvalidIdNumber or DuplicatePerson."""
    _require_staff(actor, clinic)
    number, birth_date = id_numbers.validate(id_number)
    digest = crypto.keyed_hash(number)
    person_check_not_registered(id_number=number)
    full_name = full_name.strip()
    if not full_name:
        raise ServiceError("A name is required.")
    try:
        with transaction.atomic():
            person = Person.objects.create(
                clinic=clinic,
                full_name=full_name,
                id_number_hash=digest,
                id_number_ciphertext=crypto.encrypt(number.encode()),
                id_number_masked=id_numbers.mask(number),
                birth_date=birth_date,
                phone=phone,
                notify_email=notify_email,
                is_elder=is_elder,
                is_guardian=is_guardian,
                user=user,
                created_by=actor.user,
            )
            audit_record(
                actor=actor,
                action="person.registered",
                outcome="ok",
                subject=person,
                target=person,
                clinic=clinic,
                details={"is_elder": is_elder, "is_guardian": is_guardian},
            )
    except IntegrityError as exc:  # a concurrent registration of the same number won
        raise DuplicatePerson(Person.objects.get(id_number_hash=digest)) from exc
    return person


def person_check_not_registered(*, id_number: str) -> None:
    """Raise InvalidIdNumber or DuplicatePerson before a registration is attempted."""
    number, _ = id_numbers.validate(id_number)
    existing = Person.objects.filter(id_number_hash=crypto.keyed_hash(number)).first()
    if existing is not None:
        raise DuplicatePerson(existing)


def person_find_by_id_number(*, clinic_ids: set[int] | None, id_number: str) -> Person | None:
    """Staff-only exact match by ID number through the keyed hash (never a LIKE search)."""
    number, _ = id_numbers.validate(id_number)
    people = Person.objects.filter(id_number_hash=crypto.keyed_hash(number))
    if clinic_ids is not None:
        people = people.filter(clinic_id__in=clinic_ids)
    return people.first()


def person_create_login(*, actor: Actor, person: Person, username: str, password: str | None) -> User:
    """Create the person's login account (guardian or elder). ``password=None`` makes it unusable."""
    _require_staff(actor, person.clinic_id)
    with transaction.atomic():
        person = Person.objects.select_for_update().get(pk=person.pk)
        if person.user_id is not None:
            raise IllegalState("This person already has a login account.")
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            raise ServiceError("This username is taken.")
        user = user_model.objects.create_user(username=username, password=password, first_name=person.full_name)
        person.user = user
        person.save(update_fields=["user"])
        audit_record(
            actor=actor, action="account.created", outcome="ok", subject=person, target=user, clinic=person.clinic
        )
    return user


# --- OTP devices --------------------------------------------------------------------------


def totp_device_create(*, actor: Actor, user: User, name: str = "Authenticator", confirmed: bool = False) -> TOTPDevice:
    """A new TOTP device; unconfirmed devices cannot be used until ``totp_device_confirm``."""
    with transaction.atomic():
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=confirmed)
        person = Person.objects.filter(user=user).first()
        audit_record(
            actor=actor,
            action="otp_device.created",
            outcome="confirmed" if confirmed else "unconfirmed",
            subject=person,
            target=device,
            clinic=person.clinic if person else None,
        )
    return device


def totp_device_confirm(*, actor: Actor, device_id: int, token: str) -> bool:
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device_id)
        ok = device.verify_token(token)
        if ok:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
        person = Person.objects.filter(user_id=device.user_id).first()
        audit_record(
            actor=actor,
            action="otp_device.confirmed",
            outcome="ok" if ok else "wrong_code",
            subject=person,
            target=device,
            clinic=person.clinic if person else None,
        )
    return ok


# --- authorizations -----------------------------------------------------------------------


def authorization_check_request(
    *,
    actor: Actor,
    guardian: Person,
    elder: Person,
    consent_basis: str,
    consent_reference: str = "",
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
) -> tuple[dt.datetime, dt.datetime]:
    """Raise ServiceError unless the request may be registered; returns the validity window."""
    _require_manager_rights(actor, elder.clinic_id)
    if guardian.pk == elder.pk:
        raise ServiceError("A person cannot be their own guardian.")
    if not elder.is_elder:
        raise ServiceError("The person looked after must be registered as an elder.")
    if not guardian.is_guardian:
        raise ServiceError("The guardian must be registered as a guardian.")
    if consent_basis == Authorization.ConsentBasis.LEGAL_DOCUMENT and not consent_reference.strip():
        raise ServiceError("A legal document basis needs the document's reference.")
    valid_from = valid_from or timezone.now()
    valid_until = valid_until or valid_from + dt.timedelta(days=settings.KINGUARD_AUTHORIZATION_DEFAULT_DAYS)
    if valid_until <= valid_from:
        raise ServiceError("The end date must be after the start date.")
    return valid_from, valid_until


def authorization_create(
    *,
    actor: Actor,
    guardian: Person,
    elder: Person,
    relationship: str,
    consent_basis: str,
    consent_reference: str = "",
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    scope: str = Authorization.Scope.TEST_RESULTS,
) -> Authorization:
    """Register a pending authorization (a second staff member must approve it).

    The end date defaults to KINGUARD_AUTHORIZATION_DEFAULT_DAYS after the start; there is
    no open-ended authorization.
    """
    valid_from, valid_until = authorization_check_request(
        actor=actor,
        guardian=guardian,
        elder=elder,
        consent_basis=consent_basis,
        consent_reference=consent_reference,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    with transaction.atomic():
        authorization = Authorization.objects.create(
            guardian=guardian,
            elder=elder,
            clinic=elder.clinic,
            relationship=relationship,
            scope=scope,
            status=Authorization.Status.PENDING,
            valid_from=valid_from,
            valid_until=valid_until,
            consent_basis=consent_basis,
            consent_reference=consent_reference.strip(),
            registered_by=actor.user,
        )
        audit_record(
            actor=actor,
            action="authorization.created",
            outcome="pending",
            subject=elder,
            target=authorization,
            clinic=elder.clinic,
            details={"guardian": guardian.pk, "relationship": relationship, "valid_until": valid_until},
        )
        notice_authorization_changed(actor=actor, authorization=authorization, change="created")
    return authorization


def _locked_authorization(authorization_id: int) -> Authorization:
    return Authorization.objects.select_for_update().get(pk=authorization_id)


def authorization_approve(*, actor: Actor, authorization_id: int) -> Authorization:
    """pending → active, by a staff member other than the registrar."""
    with transaction.atomic():
        authorization = _locked_authorization(authorization_id)
        _require_manager_rights(actor, authorization.clinic_id)
        if authorization.status != Authorization.Status.PENDING:
            raise IllegalState(f"Only a pending authorization can be approved (this one is {authorization.status}).")
        if authorization.registered_by_id == actor.user.pk:
            raise NotPermitted("A second staff member must approve: you registered this authorization.")
        now = timezone.now()
        authorization.status = Authorization.Status.ACTIVE
        authorization.approved_by = actor.user
        authorization.approved_at = now
        authorization.save(update_fields=["status", "approved_by", "approved_at"])
        audit_record(
            actor=actor,
            action="authorization.approved",
            outcome="active",
            subject=authorization.elder,
            target=authorization,
            clinic=authorization.clinic,
        )
        notice_authorization_changed(actor=actor, authorization=authorization, change="approved")
    return authorization


def _authorization_end(
    *, actor: Actor, authorization_id: int, new_status: str, allowed_from: Sequence[str], reason: str, action: str
) -> Authorization:
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give a reason.")
    with transaction.atomic():
        authorization = _locked_authorization(authorization_id)
        _require_manager_rights(actor, authorization.clinic_id)
        if authorization.status not in allowed_from:
            raise IllegalState(f"This authorization is {authorization.status}; that change is not possible.")
        authorization.status = new_status
        authorization.ended_by = actor.user
        authorization.ended_at = timezone.now()
        authorization.end_reason = reason[:300]
        authorization.save(update_fields=["status", "ended_by", "ended_at", "end_reason"])
        audit_record(
            actor=actor,
            action=action,
            outcome=new_status,
            subject=authorization.elder,
            target=authorization,
            clinic=authorization.clinic,
            details={"reason": reason[:300]},
        )
        if new_status == Authorization.Status.REVOKED:
            notice_authorization_changed(actor=actor, authorization=authorization, change="revoked")
    return authorization


def authorization_revoke(*, actor: Actor, authorization_id: int, reason: str) -> Authorization:
    """Any non-final state → revoked. Takes effect on in-flight lookups immediately."""
    S = Authorization.Status
    return _authorization_end(
        actor=actor,
        authorization_id=authorization_id,
        new_status=S.REVOKED,
        allowed_from=(S.PENDING, S.ACTIVE, S.SUSPENDED),
        reason=reason,
        action="authorization.revoked",
    )


def authorization_suspend(*, actor: Actor, authorization_id: int, reason: str) -> Authorization:
    S = Authorization.Status
    return _authorization_end(
        actor=actor,
        authorization_id=authorization_id,
        new_status=S.SUSPENDED,
        allowed_from=(S.ACTIVE,),
        reason=reason,
        action="authorization.suspended",
    )


def authorization_renew(*, actor: Actor, authorization_id: int, valid_until: dt.datetime) -> Authorization:
    """Extend an active or suspended authorization to a new end date (status → active)."""
    S = Authorization.Status
    with transaction.atomic():
        authorization = _locked_authorization(authorization_id)
        _require_manager_rights(actor, authorization.clinic_id)
        if authorization.status not in (S.ACTIVE, S.SUSPENDED, S.EXPIRED):
            raise IllegalState(f"This authorization is {authorization.status}; it cannot be renewed.")
        if valid_until <= timezone.now():
            raise ServiceError("The new end date must be in the future.")
        authorization.status = S.ACTIVE
        authorization.valid_until = valid_until
        authorization.save(update_fields=["status", "valid_until"])
        audit_record(
            actor=actor,
            action="authorization.renewed",
            outcome="active",
            subject=authorization.elder,
            target=authorization,
            clinic=authorization.clinic,
            details={"valid_until": valid_until},
        )
    return authorization


# --- face enrollment ----------------------------------------------------------------------


def face_samples_from_images(images: Sequence[bytes]) -> list:
    """Decode and quality-check enrollment photos (pure computation, nothing stored).

    Raises ``face_pipeline.ProbeRejected`` with ``.image_index`` naming the failing photo.
    """
    from lookups import face_pipeline

    if not images:
        raise ServiceError("Provide at least one photo.")
    samples = []
    for index, data in enumerate(images):
        try:
            samples.append(face_pipeline.detect_single_face(face_pipeline.load_probe_image(data)))
        except face_pipeline.ProbeRejected as exc:
            exc.image_index = index
            raise
    return samples


def face_enroll(
    *,
    actor: Actor,
    person: Person,
    consent_text: str,
    images: Sequence[bytes] = (),
    samples: Sequence | None = None,
) -> FaceEnrollment:
    """Build the person's template from one or more photos and store it encrypted.

    Photos are processed in memory and never stored; ``samples`` may be passed when the
    caller already ran ``face_samples_from_images`` (e.g. in form validation). The template
    is the mean embedding. Re-enrollment replaces the previous template, audited.
    """
    from lookups import face_pipeline

    _require_staff(actor, person.clinic_id)
    if not consent_text.strip():
        raise ServiceError("Record the person's biometric consent first.")
    if samples is None:
        samples = face_samples_from_images(images)
    if not samples:
        raise ServiceError("Provide at least one photo.")
    template = face_pipeline.build_template(samples)
    with transaction.atomic():
        Person.objects.select_for_update().get(pk=person.pk)
        replaced = FaceEnrollment.objects.filter(person=person).delete()[0] > 0
        enrollment = FaceEnrollment.objects.create(
            person=person,
            template_ciphertext=crypto.encrypt(face_pipeline.encode_template_bytes(template)),
            model_version=face_pipeline.MODEL_VERSION,
            sample_count=len(samples),
            consent_text=consent_text.strip(),
            consented_at=timezone.now(),
            enrolled_by=actor.user,
        )
        audit_record(
            actor=actor,
            action="face.enrolled",
            outcome="replaced" if replaced else "new",
            subject=person,
            target=enrollment,
            clinic=person.clinic,
            details={"samples": len(samples), "model_version": face_pipeline.MODEL_VERSION},
        )
    return enrollment


def face_template_of(person: Person):
    """Decrypt a person's reference template (numpy vector) or None if not enrolled."""
    from lookups import face_pipeline

    enrollment = FaceEnrollment.objects.filter(person=person).first()
    if enrollment is None:
        return None
    return face_pipeline.decode_template_bytes(crypto.decrypt(enrollment.template_ciphertext))


def totp_device_save_from_admin(*, actor: Actor, device: TOTPDevice, created: bool) -> TOTPDevice:
    """Persist a device edited in the admin, with its audit event in the same transaction."""
    with transaction.atomic():
        device.save()
        person = Person.objects.filter(user_id=device.user_id).first()
        audit_record(
            actor=actor,
            action="otp_device.created" if created else "otp_device.changed",
            outcome="confirmed" if device.confirmed else "unconfirmed",
            subject=person,
            target=device,
            clinic=person.clinic if person else None,
        )
    return device


def staff_member_add(*, actor: Actor, user: User, clinic: Clinic, role: str) -> None:
    """Give ``user`` a role at ``clinic`` (admin access; model permissions come from the role group)."""
    from django.contrib.auth.models import Group

    from .models import StaffMembership

    with transaction.atomic():
        StaffMembership.objects.update_or_create(user=user, clinic=clinic, defaults={"role": role})
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        group = Group.objects.filter(name=ROLE_GROUPS[role]).first()
        if group is not None:
            user.groups.add(group)
        audit_record(
            actor=actor, action="staff.role_granted", outcome=role, target=user, clinic=clinic, details={"role": role}
        )


ROLE_GROUPS = {"staff": "Clinic staff", "manager": "Clinic managers", "auditor": "Auditors"}
