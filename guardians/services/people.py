"""Guardians services: people."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from lookups.audit import Actor, audit_record

from .. import crypto, id_numbers, permissions, phones
from ..models import Clinic, IdentityCheck, Person
from ..signals import person_registered
from .accounts import person_create_login
from .common import (  # noqa: F401
    BACKUP_CODE_COUNT,
    BACKUP_CODE_DIGITS,
    FACE_CONSENT_VALID_MINUTES,
    REMOVAL_REQUEST_ACTION,
    DuplicatePerson,
    IllegalState,
    NotPermitted,
    ServiceError,
    _login_of,
    require_staff_can,
)

if TYPE_CHECKING:
    from ..models import User


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
    require_staff_can(actor, permissions.StaffAction.REGISTER, clinic)
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
            # Lab results that arrived before the registration (issue 15): lookups attaches
            # them (guardians.signals; lookups builds on guardians, never the reverse).
            person_registered.send(sender=Person, actor=actor, person=person)
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


def staff_member_add(*, actor: Actor, user: User, clinic: Clinic, role: str) -> None:
    """Give ``user`` a role at ``clinic`` (admin access; model permissions come from the role group)."""
    from django.contrib.auth.models import Group

    from ..models import StaffMembership

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
# Used by the staff workspace (guardians/staff/views/). Each function checks the actor's role at
# the person's clinic (guardians.permissions.staff_can, the same rule the pages use) and
# writes its audit event in the same transaction as the change.


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
    staff = require_staff_can(actor, permissions.StaffAction.REGISTER, person.clinic_id)
    if document_type not in IdentityCheck.DocumentType.values:
        raise ServiceError("Choose the kind of identity document that was checked.")
    with transaction.atomic():
        check = IdentityCheck.objects.create(
            person=person,
            clinic_id=person.clinic_id,
            document_type=document_type,
            note=note.strip()[:200],
            checked_by=staff,
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
    require_staff_can(actor, permissions.StaffAction.REGISTER, clinic)
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
