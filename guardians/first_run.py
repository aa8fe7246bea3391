"""First run of a clinic: the clinic, its first manager and an authenticator (``bootstrap_clinic``).

Lives outside ``guardians.services`` only because that module is being split into a package;
the integrator may move it to ``guardians/services/first_run.py`` unchanged.

Idempotent: running it again finds the clinic and the manager and creates nothing new. While the
manager has not chosen a password yet, a rerun prints a fresh set-password link and the same
authenticator again (the first output may have been lost); once they have, it refuses to print
the authenticator secret. Everything is one transaction, audited (``clinic.created``,
``staff.role_granted``, ``otp_device.created``, ``account.set_password_link_issued``); the
actor is the system actor ``bootstrap`` (there is no signed-in user on a fresh host).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_otp.plugins.otp_totp.models import TOTPDevice

from lookups.audit import Actor, audit_record

from .models import Clinic, StaffMembership, User


@dataclass(frozen=True)
class BootstrapResult:
    clinic: Clinic
    manager: User
    clinic_created: bool
    manager_created: bool
    device: TOTPDevice | None  # None: the manager already has a password; secret not shown again
    set_password_path: str | None


def clinic_bootstrap(*, name: str, manager_login: str, phone: str = "", address: str = "") -> BootstrapResult:
    """Create (or find) the clinic and its first manager; lock the clinic row while doing it."""
    from . import services

    actor = Actor.system("bootstrap")
    with transaction.atomic():
        clinic = Clinic.objects.select_for_update().filter(name=name).first()
        clinic_created = clinic is None
        if clinic is None:
            clinic = Clinic.objects.create(name=name, phone=phone, address=address)
            audit_record(
                actor=actor,
                action="clinic.created",
                outcome="created",
                target=clinic,
                clinic=clinic,
                details={"name": name},
            )
        manager = User.objects.select_for_update().filter(username=manager_login).first()
        manager_created = manager is None
        if manager is None:
            manager = User.objects.create_user(username=manager_login, password=None)
        if not StaffMembership.objects.filter(user=manager, clinic=clinic, role="manager").exists():
            services.staff_member_add(actor=actor, user=manager, clinic=clinic, role="manager")
        if manager.has_usable_password():
            return BootstrapResult(clinic, manager, clinic_created, manager_created, None, None)
        device = TOTPDevice.objects.filter(user=manager, confirmed=True).order_by("pk").first()
        if device is None:
            device = services.totp_device_create(actor=actor, user=manager, name="Authenticator", confirmed=True)
        audit_record(
            actor=actor,
            action="account.set_password_link_issued",
            outcome="first",
            target=manager,
            clinic=clinic,
        )
    uid = urlsafe_base64_encode(force_bytes(manager.pk))
    link = reverse(
        "accounts:set_password", kwargs={"uidb64": uid, "token": default_token_generator.make_token(manager)}
    )
    return BootstrapResult(clinic, manager, clinic_created, manager_created, device, link)
