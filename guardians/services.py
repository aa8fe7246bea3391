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

from . import crypto, id_numbers, permissions, phones
from .models import Authorization, Clinic, FaceConsent, FaceEnrollment, IdentityCheck, Person

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
    """Front-desk rights (clinic staff or manager) at ``clinic``; auditors only read."""
    roles = permissions.ACTION_ROLES[permissions.StaffAction.REGISTER]
    if actor.user is None or not permissions.is_staff_of(actor.user, clinic, roles):
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
    try:
        phone = phones.normalize(phone)
    except phones.InvalidPhoneNumber as exc:
        raise ServiceError("The mobile phone number is not valid.") from exc
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
            # Lab results that arrived before the registration (issue 15). Imported here:
            # lookups depends on guardians, never the other way round at import time.
            from lookups.fhir.services import pending_attach

            pending_attach(actor=actor, person=person)
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
    *,
    actor: Actor,
    authorization_id: int,
    new_status: str,
    allowed_from: Sequence[str],
    reason: str,
    action: str,
    requested_by: str = "",
) -> Authorization:
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give a reason.")
    if requested_by and requested_by not in Authorization.EndRequestedBy.values:
        raise ServiceError("Say who asked for this change: the elder, the guardian or the clinic.")
    with transaction.atomic():
        authorization = _locked_authorization(authorization_id)
        _require_manager_rights(actor, authorization.clinic_id)
        if authorization.status not in allowed_from:
            raise IllegalState(f"This authorization is {authorization.status}; that change is not possible.")
        authorization.status = new_status
        authorization.ended_by = actor.user
        authorization.ended_at = timezone.now()
        authorization.end_reason = reason[:300]
        authorization.end_requested_by = requested_by
        authorization.save(update_fields=["status", "ended_by", "ended_at", "end_reason", "end_requested_by"])
        audit_record(
            actor=actor,
            action=action,
            outcome=new_status,
            subject=authorization.elder,
            target=authorization,
            clinic=authorization.clinic,
            details={"reason": reason[:300], "requested_by": requested_by},
        )
        if new_status == Authorization.Status.REVOKED:
            notice_authorization_changed(actor=actor, authorization=authorization, change="revoked")
    return authorization


def authorization_revoke(*, actor: Actor, authorization_id: int, reason: str, requested_by: str = "") -> Authorization:
    """Any non-final state → revoked. Takes effect on in-flight lookups immediately.

    ``requested_by`` (``Authorization.EndRequestedBy``) records whose request it was.
    """
    S = Authorization.Status
    return _authorization_end(
        actor=actor,
        authorization_id=authorization_id,
        new_status=S.REVOKED,
        allowed_from=(S.PENDING, S.ACTIVE, S.SUSPENDED),
        reason=reason,
        action="authorization.revoked",
        requested_by=requested_by,
    )


def authorization_suspend(*, actor: Actor, authorization_id: int, reason: str, requested_by: str = "") -> Authorization:
    S = Authorization.Status
    return _authorization_end(
        actor=actor,
        authorization_id=authorization_id,
        new_status=S.SUSPENDED,
        allowed_from=(S.ACTIVE,),
        reason=reason,
        action="authorization.suspended",
        requested_by=requested_by,
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

    Raises ``ProbeRejected`` with ``.image_index`` naming the failing photo.
    """
    from lookups.faces.detection import detect_single_face
    from lookups.faces.errors import ProbeRejected
    from lookups.faces.images import load_probe_image

    if not images:
        raise ServiceError("Provide at least one photo.")
    samples = []
    for index, data in enumerate(images):
        try:
            samples.append(detect_single_face(load_probe_image(data)))
        except ProbeRejected as exc:
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
    from lookups.faces.matching import MODEL_VERSION, build_template, encode_template_bytes

    _require_staff(actor, person.clinic_id)
    if not consent_text.strip():
        raise ServiceError("Record the person's biometric consent first.")
    if samples is None:
        samples = face_samples_from_images(images)
    if not samples:
        raise ServiceError("Provide at least one photo.")
    template = build_template(samples)
    with transaction.atomic():
        Person.objects.select_for_update().get(pk=person.pk)
        replaced = FaceEnrollment.objects.filter(person=person).delete()[0] > 0
        enrollment = FaceEnrollment.objects.create(
            person=person,
            template_ciphertext=crypto.encrypt(encode_template_bytes(template)),
            model_version=MODEL_VERSION,
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
            details={"samples": len(samples), "model_version": MODEL_VERSION},
        )
    return enrollment


def face_enrollment_withdraw(*, actor: Actor, person: Person, reason: str) -> bool:
    """The person withdrew their biometric consent: delete their face template now.

    Locks the person row; audited (``face.consent_withdrawn``) in the same transaction.
    Lookups needing a face then stop at the face step ("not enrolled") until a new consent
    and enrollment. Returns False when there was no template.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give a reason (for example: at the person's request).")
    if actor.user is None or not permissions.staff_can(actor.user, permissions.StaffAction.ENROLL, person.clinic_id):
        raise NotPermitted("You may not change enrollments at this clinic.")
    with transaction.atomic():
        Person.objects.select_for_update().get(pk=person.pk)
        enrollment = FaceEnrollment.objects.filter(person=person).first()
        if enrollment is None:
            return False
        audit_record(
            actor=actor,
            action="face.consent_withdrawn",
            outcome="template_deleted",
            subject=person,
            clinic=person.clinic,
            details={"reason": reason[:300], "enrolled_at": enrollment.enrolled_at},
        )
        enrollment.delete()
    return True


def face_template_of(person: Person):
    """Decrypt a person's reference template (numpy vector) or None if not enrolled."""
    from lookups.faces.matching import decode_template_bytes

    enrollment = FaceEnrollment.objects.filter(person=person).first()
    if enrollment is None:
        return None
    return decode_template_bytes(crypto.decrypt(enrollment.template_ciphertext))


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


# --- staff workspace: in-person registration, enrollment, sign-in --------------------------
#
# Used by the staff workspace (guardians/views.py). Each function checks the actor's role at
# the person's clinic (guardians.permissions.staff_can, the same rule the pages use) and
# writes its audit event in the same transaction as the change.

FACE_CONSENT_VALID_MINUTES = 60
BACKUP_CODE_COUNT = 10
BACKUP_CODE_DIGITS = 8


def _require_action(actor: Actor, action: str, clinic: Clinic | int) -> None:
    if actor.user is None or not permissions.staff_can(actor.user, action, clinic):
        raise NotPermitted("You are not allowed to do this for this clinic.")


def _login_of(person: Person) -> User:
    if person.user_id is None:
        raise IllegalState("This person has no login account yet.")
    return person.user


def id_number_check_birth_date(*, id_number: str, birth_date: dt.date | None) -> tuple[str, dt.date]:
    """Validate the ID number and compare the birth date it encodes with the document's.

    Returns (normalized number, birth date). Raises InvalidIdNumber or ServiceError.
    """
    number, derived = id_numbers.validate(id_number)
    if birth_date is not None and birth_date != derived:
        raise ServiceError(
            f"The date of birth on the document ({birth_date:%Y-%m-%d}) does not match the one inside the "
            f"ID number ({derived:%Y-%m-%d}). Please re-read both from the document."
        )
    return number, derived


def identity_check_record(*, actor: Actor, person: Person, document_type: str, note: str = "") -> IdentityCheck:
    """Record that ``actor`` checked ``person``'s identity document in person (who, what, when)."""
    _require_action(actor, permissions.StaffAction.REGISTER, person.clinic_id)
    if document_type not in IdentityCheck.DocumentType.values:
        raise ServiceError("Choose the kind of identity document that was checked.")
    with transaction.atomic():
        check = IdentityCheck.objects.create(
            person=person,
            clinic_id=person.clinic_id,
            document_type=document_type,
            note=note.strip()[:200],
            checked_by=actor.user,
        )
        audit_record(
            actor=actor,
            action="identity.checked",
            outcome=document_type,
            subject=person,
            target=check,
            clinic=person.clinic,
        )
    return check


def person_register_in_person(
    *,
    actor: Actor,
    clinic: Clinic,
    full_name: str,
    id_number: str,
    birth_date: dt.date | None,
    document_type: str,
    document_note: str = "",
    is_elder: bool = False,
    is_guardian: bool = False,
    phone: str = "",
    notify_email: str = "",
    username: str = "",
) -> Person:
    """Register an elder or a guardian at the desk: person, identity check, login account.

    All or nothing (one transaction): a taken username leaves no person behind. The login
    account (required for a guardian) gets no usable password; its owner chooses one through
    a one-time link (``set_password_link_issue``). Raises InvalidIdNumber, DuplicatePerson
    (``.existing``) or ServiceError.
    """
    _require_action(actor, permissions.StaffAction.REGISTER, clinic)
    number, _ = id_number_check_birth_date(id_number=id_number, birth_date=birth_date)
    if not (is_elder or is_guardian):
        raise ServiceError("Register the person as an elder, a guardian or both.")
    username = username.strip()
    if is_guardian and not username:
        raise ServiceError("A guardian needs a login name.")
    with transaction.atomic():
        person = person_register(
            actor=actor,
            clinic=clinic,
            full_name=full_name,
            id_number=number,
            is_elder=is_elder,
            is_guardian=is_guardian,
            phone=phone.strip(),
            notify_email=notify_email.strip(),
        )
        identity_check_record(actor=actor, person=person, document_type=document_type, note=document_note)
        if username:
            person_create_login(actor=actor, person=person, username=username, password=None)
            person.refresh_from_db()
    return person


def set_password_link_issue(*, actor: Actor, person: Person) -> str:
    """A one-time set-password path for the person's login (``/accounts/set-password/<uid>/<token>/``).

    Django's ``default_token_generator``: the token hashes the current password and last
    login, so it stops working once a password is set, and after PASSWORD_RESET_TIMEOUT.
    Issuing a new link does not store anything; it is audited (never the token itself).
    """
    from django.contrib.auth.tokens import default_token_generator
    from django.urls import reverse
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    _require_action(actor, permissions.StaffAction.REGISTER, person.clinic_id)
    user = _login_of(person)
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="account.set_password_link_issued",
            outcome="reset" if user.has_usable_password() else "first",
            subject=person,
            target=user,
            clinic=person.clinic,
        )
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("accounts:set_password", kwargs={"uidb64": uid, "token": default_token_generator.make_token(user)})


def account_password_set(*, actor: Actor, user: User, password: str) -> None:
    """Set the password chosen through a set-password link (validated by the caller's form).

    Locks the user row so a link used twice at once sets the password only once.
    """
    with transaction.atomic():
        user = get_user_model().objects.select_for_update().get(pk=user.pk)
        user.set_password(password)
        user.save(update_fields=["password"])
        person = Person.objects.filter(user=user).select_related("clinic").first()
        audit_record(
            actor=actor,
            action="account.password_set",
            outcome="ok",
            subject=person,
            target=user,
            clinic=person.clinic if person else None,
        )


def otp_enrollment_start(*, actor: Actor, person: Person) -> TOTPDevice:
    """Start enrolling the person's authenticator app: a new unconfirmed TOTP device.

    Earlier unconfirmed devices of the account are removed, so an abandoned QR code stops
    working. The device cannot be used (lookups only use confirmed devices) until
    ``otp_enrollment_confirm`` accepts one code from the app.
    """
    _require_action(actor, permissions.StaffAction.ENROLL, person.clinic_id)
    user = _login_of(person)
    with transaction.atomic():
        Person.objects.select_for_update().get(pk=person.pk)
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return totp_device_create(actor=actor, user=user, name="Authenticator (clinic enrollment)", confirmed=False)


def otp_enrollment_confirm(*, actor: Actor, person: Person, device_id: int, token: str) -> bool:
    """Confirm the device being enrolled with one code; on success it replaces older devices.

    Returns False for a wrong code (counted by django-otp's throttling). Raises IllegalState
    when the device is not the person's unconfirmed device (e.g. enrollment restarted).
    """
    _require_action(actor, permissions.StaffAction.ENROLL, person.clinic_id)
    user = _login_of(person)
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(pk=device_id, user=user, confirmed=False).first()
        if device is None:
            raise IllegalState("This enrollment screen is out of date. Please start the enrollment again.")
        ok = totp_device_confirm(actor=actor, device_id=device.pk, token=token.strip().replace(" ", ""))
        if ok:
            replaced = TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()[0]
            if replaced:
                audit_record(
                    actor=actor,
                    action="otp_device.replaced",
                    outcome="ok",
                    subject=person,
                    target=device,
                    clinic=person.clinic,
                    details={"removed": replaced},
                )
    return ok


def backup_codes_issue(*, actor: Actor, person: Person) -> list[str]:
    """Replace the account's backup codes with new single-use 8-digit codes, for printing.

    Stored in django-otp's static device (each code is deleted when used). The codes are
    returned only here; the audit event records how many were issued, never the codes.
    """
    import secrets

    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    _require_action(actor, permissions.StaffAction.ENROLL, person.clinic_id)
    user = _login_of(person)
    codes: set[str] = set()
    while len(codes) < BACKUP_CODE_COUNT:
        codes.add(f"{secrets.randbelow(10**BACKUP_CODE_DIGITS):0{BACKUP_CODE_DIGITS}d}")
    with transaction.atomic():
        device = StaticDevice.objects.select_for_update().filter(user=user).first()
        if device is None:
            device = StaticDevice.objects.create(user=user, name="Backup codes", confirmed=True)
        device.token_set.all().delete()
        StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
        audit_record(
            actor=actor,
            action="otp_backup_codes.issued",
            outcome="ok",
            subject=person,
            target=device,
            clinic=person.clinic,
            details={"count": len(codes)},
        )
    return sorted(codes)


def face_consent_record(
    *, actor: Actor, person: Person, consent_text: str, given_by: str, representative_name: str = ""
) -> FaceConsent:
    """Record the separate biometric consent (the exact text shown, who gave it) before enrolling."""
    _require_action(actor, permissions.StaffAction.ENROLL, person.clinic_id)
    consent_text = consent_text.strip()
    if not consent_text:
        raise ServiceError("The consent text shown to the person is required.")
    if given_by not in FaceConsent.GivenBy.values:
        raise ServiceError("Say who gave the consent.")
    representative_name = representative_name.strip()
    if given_by == FaceConsent.GivenBy.REPRESENTATIVE and not representative_name:
        raise ServiceError("Give the legal representative's name.")
    with transaction.atomic():
        consent = FaceConsent.objects.create(
            person=person,
            consent_text=consent_text,
            given_by=given_by,
            representative_name=representative_name[:200] if given_by == FaceConsent.GivenBy.REPRESENTATIVE else "",
            recorded_by=actor.user,
        )
        audit_record(
            actor=actor,
            action="face.consent_recorded",
            outcome=given_by,
            subject=person,
            target=consent,
            clinic=person.clinic,
        )
    return consent


def face_consent_pending(person: Person, now: dt.datetime | None = None) -> FaceConsent | None:
    """The person's latest unused consent recorded within FACE_CONSENT_VALID_MINUTES, if any."""
    now = now or timezone.now()
    return (
        FaceConsent.objects.filter(
            person=person,
            used_at__isnull=True,
            recorded_at__gte=now - dt.timedelta(minutes=FACE_CONSENT_VALID_MINUTES),
        )
        .order_by("-recorded_at")
        .first()
    )


def face_enroll_with_consent(*, actor: Actor, person: Person, consent_id: int, samples: Sequence) -> FaceEnrollment:
    """Enroll (or re-enroll) a face under a fresh, unused consent of this person, and link them.

    The consent row is locked, so one consent yields one enrollment. ``samples`` come from
    ``face_samples_from_images`` (quality-gated); the template is their mean.
    """
    _require_action(actor, permissions.StaffAction.ENROLL, person.clinic_id)
    now = timezone.now()
    with transaction.atomic():
        consent = FaceConsent.objects.select_for_update().filter(pk=consent_id, person=person).first()
        if consent is None or consent.used_at is not None:
            raise ServiceError("Record the person's biometric consent first.")
        if consent.recorded_at < now - dt.timedelta(minutes=FACE_CONSENT_VALID_MINUTES):
            raise ServiceError(
                f"The consent was recorded more than {FACE_CONSENT_VALID_MINUTES} minutes ago. Please record it again."
            )
        enrollment = face_enroll(actor=actor, person=person, consent_text=consent.consent_text, samples=samples)
        enrollment.consent = consent
        enrollment.consented_at = consent.recorded_at
        enrollment.save(update_fields=["consent", "consented_at"])
        consent.used_at = now
        consent.save(update_fields=["used_at"])
    return enrollment


def staff_sign_in_record(*, actor: Actor, username: str, ok: bool, reason: str = "") -> None:
    """Audit a staff sign-in attempt (password + one-time code) on the workspace login page.

    Written as ``login.succeeded`` / ``login.failed`` with ``via="staff"``, the same names as
    every other sign-in (rows written before as ``staff.signed_in`` still read as sign-ins)."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="login.succeeded" if ok else "login.failed",
            outcome="ok" if ok else (reason or "refused")[:30],
            target=actor.user if ok else None,
            details={"via": "staff", "username": username[:150]},
        )


def staff_otp_reverify(*, actor: Actor, user: User, token: str) -> bool:
    """Check a fresh TOTP code for step-up re-authentication. The device row is locked so a
    code is accepted once; failures feed django-otp's throttling. Audited either way."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        ok = device is not None and device.verify_token(token)
        audit_record(
            actor=actor,
            action="staff.reverified" if ok else "staff.reverify_failed",
            outcome="ok" if ok else ("no_device" if device is None else "wrong_code"),
            target=user,
        )
    return ok


# --- the user's own preferences and requests (issue 6) ------------------------------------


def user_preferences_update(
    *, actor: Actor, user: User, large_text: bool | None = None, preferred_language: str | None = None
) -> User:
    """Change a user's own display preferences (elder mode, language). ``None`` leaves a value.

    Only the user themselves may change them. The user row is locked so two tabs toggling at
    once end in one of the two values, each change audited.
    """
    if actor.user is None or actor.user.pk != user.pk:
        raise NotPermitted("Only you can change your own preferences.")
    languages = {code for code, _name in settings.LANGUAGES}
    if preferred_language is not None and preferred_language not in languages | {""}:
        raise ServiceError("Unknown language.")
    with transaction.atomic():
        locked = get_user_model().objects.select_for_update().get(pk=user.pk)
        changed: dict[str, object] = {}
        if large_text is not None and locked.large_text != large_text:
            locked.large_text = large_text
            changed["large_text"] = large_text
        if preferred_language is not None and locked.preferred_language != preferred_language:
            locked.preferred_language = preferred_language
            changed["preferred_language"] = preferred_language
        if changed:
            locked.save(update_fields=list(changed))
            person = Person.objects.filter(user=locked).first()
            audit_record(
                actor=actor,
                action="preferences.changed",
                outcome="ok",
                subject=person,
                target=locked,
                clinic=person.clinic if person else None,
                details=changed,
            )
    user.large_text, user.preferred_language = locked.large_text, locked.preferred_language
    return locked


REMOVAL_REQUEST_ACTION = "authorization.removal_requested"


def authorization_removal_request(*, actor: Actor, authorization_id: int, note: str = "") -> bool:
    """The elder asks the clinic to remove one of their guardians' authorizations.

    Nothing changes on the authorization itself: staff must revoke it after checking the
    elder's ID in person (``authorization_revoke``). The request is an audit event
    (``authorization.removal_requested``, clinic set) that the staff workspace lists. Only the
    elder of a pending, active or suspended authorization may ask. The authorization row is
    locked, so a request is recorded once per authorization: returns True when recorded now,
    False when it had already been requested.
    """
    from lookups.models import AuditEvent

    S = Authorization.Status
    with transaction.atomic():
        try:
            authorization = Authorization.objects.select_for_update().select_related("elder").get(pk=authorization_id)
        except (Authorization.DoesNotExist, ValueError, TypeError) as exc:
            raise NotPermitted("No such authorization.") from exc
        elder = authorization.elder
        if actor.user is None or elder.user_id != actor.user.pk or not elder.is_elder:
            raise NotPermitted("No such authorization.")
        if authorization.status not in (S.PENDING, S.ACTIVE, S.SUSPENDED):
            raise IllegalState("This authorization has already ended.")
        already = AuditEvent.objects.filter(
            action=REMOVAL_REQUEST_ACTION,
            target_type=Authorization._meta.label,
            target_id=str(authorization.pk),
        ).exists()
        if already:
            return False
        audit_record(
            actor=actor,
            action=REMOVAL_REQUEST_ACTION,
            outcome="requested",
            subject=elder,
            target=authorization,
            clinic=authorization.clinic,
            details={"guardian": authorization.guardian_id, "note": (note or "").strip()[:300]},
        )
    return True
