"""Guardians services: otp devices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from lookups.audit import Actor, audit_record

from .. import permissions
from ..models import Person
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


def otp_enrollment_start(*, actor: Actor, person: Person) -> TOTPDevice:
    """Start enrolling the person's authenticator app: a new unconfirmed TOTP device.

    Earlier unconfirmed devices of the account are removed, so an abandoned QR code stops
    working. The device cannot be used (lookups only use confirmed devices) until
    ``otp_enrollment_confirm`` accepts one code from the app.
    """
    require_staff_can(actor, permissions.StaffAction.ENROLL, person.clinic_id)
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
    require_staff_can(actor, permissions.StaffAction.ENROLL, person.clinic_id)
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

    require_staff_can(actor, permissions.StaffAction.ENROLL, person.clinic_id)
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
