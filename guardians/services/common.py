"""Guardians services: common."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lookups.audit import Actor

from .. import permissions
from ..models import Clinic, Person

if TYPE_CHECKING:
    from ..models import User


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


def require_staff_can(actor: Actor, action: str, clinic: Clinic | int) -> User:
    """Refuse unless ``permissions.staff_can(actor.user, action, clinic)`` (the one rule);
    return the staff user (never None: a system actor is not staff)."""
    user = actor.user
    if user is None or not permissions.staff_can(user, action, clinic):
        raise NotPermitted("You are not allowed to do this for this clinic.")
    return user


def staff_user(actor: Actor) -> User:
    """``actor.user`` where ``require_staff_can`` already passed (a system actor never passes it)."""
    if actor.user is None:
        raise NotPermitted("You are not allowed to do this for this clinic.")
    return actor.user


def _login_of(person: Person) -> User:
    user = person.user
    if user is None:
        raise IllegalState("This person has no login account yet.")
    return user


FACE_CONSENT_VALID_MINUTES = 60
BACKUP_CODE_COUNT = 10
BACKUP_CODE_DIGITS = 8
REMOVAL_REQUEST_ACTION = "authorization.removal_requested"
