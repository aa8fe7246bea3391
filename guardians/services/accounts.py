"""Guardians services: accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction

from lookups.audit import Actor, audit_record

from .. import permissions
from ..models import Person
from .common import (  # noqa: F401
    DuplicatePerson,
    IllegalState,
    NotPermitted,
    ServiceError,
    _login_of,
    require_staff_can,
)

if TYPE_CHECKING:
    from ..models import User


def person_create_login(*, actor: Actor, person: Person, username: str, password: str | None) -> User:
    """Create the person's login account (guardian or elder). ``password=None`` makes it unusable."""
    require_staff_can(actor, permissions.StaffAction.REGISTER, person.clinic_id)
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

    require_staff_can(actor, permissions.StaffAction.REGISTER, person.clinic_id)
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
