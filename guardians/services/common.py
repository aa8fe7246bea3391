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


def _require_staff(actor: Actor, clinic: Clinic | int) -> None:
    """Front-desk rights (clinic staff or manager) at ``clinic``; auditors only read."""
    roles = permissions.ACTION_ROLES[permissions.StaffAction.REGISTER]
    if actor.user is None or not permissions.is_staff_of(actor.user, clinic, roles):
        raise NotPermitted("You are not staff of this clinic.")


def _require_manager_rights(actor: Actor, clinic: Clinic | int) -> None:
    if actor.user is None or not permissions.can_manage_authorizations(actor.user, clinic):
        raise NotPermitted("Only clinic staff or managers of this clinic may change authorizations.")


# --- people -------------------------------------------------------------------------------


def _require_action(actor: Actor, action: str, clinic: Clinic | int) -> None:
    if actor.user is None or not permissions.staff_can(actor.user, action, clinic):
        raise NotPermitted("You are not allowed to do this for this clinic.")


def _login_of(person: Person) -> User:
    if person.user_id is None:
        raise IllegalState("This person has no login account yet.")
    return person.user


FACE_CONSENT_VALID_MINUTES = 60
BACKUP_CODE_COUNT = 10
BACKUP_CODE_DIGITS = 8
REMOVAL_REQUEST_ACTION = "authorization.removal_requested"
