"""The one rule set for who may see and do what.

Querysets and single-object checks are built from the same functions, so a list can never
show something that the detail page would refuse (or the reverse). Anything a user may not
reach is answered exactly like something that does not exist (404).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import Authorization, Clinic, Person, StaffMembership

if TYPE_CHECKING:
    from .models import User


def _person_of(user: User) -> Person | None:
    if not user.is_authenticated:
        return None
    try:
        return user.person
    except Person.DoesNotExist:
        return None


def active_authorization_q(at: dt.datetime, prefix: str = "") -> Q:
    """Q for authorizations in force at ``at`` (the queryset twin of ``Authorization.is_active_at``)."""
    return Q(
        **{
            f"{prefix}status": Authorization.Status.ACTIVE,
            f"{prefix}valid_from__lte": at,
            f"{prefix}valid_until__gt": at,
        }
    )


def authorizations_usable_by(user: User, at: dt.datetime | None = None) -> QuerySet[Authorization]:
    """Authorizations under which ``user`` (as guardian) may look someone up right now."""
    at = at or timezone.now()
    if not user.is_authenticated:
        return Authorization.objects.none()
    return Authorization.objects.filter(active_authorization_q(at), guardian__user=user)


def can_look_up_self(user: User) -> bool:
    person = _person_of(user)
    return person is not None and person.is_elder


def elders_for(user: User, at: dt.datetime | None = None) -> QuerySet[Person]:
    """The people ``user`` may start a lookup for: authorized elders, plus themselves if an elder."""
    at = at or timezone.now()
    if not user.is_authenticated:
        return Person.objects.none()
    condition = Q(pk__in=authorizations_usable_by(user, at).values("elder_id"))
    if can_look_up_self(user):
        condition |= Q(user=user)
    return Person.objects.filter(condition)


def authorization_for(user: User, elder: Person, at: dt.datetime | None = None) -> Authorization | None:
    """The authorization that lets ``user`` act for ``elder`` now, or None (self or not allowed)."""
    return authorizations_usable_by(user, at).filter(elder=elder).order_by("-valid_until").first()


def can_act_for(user: User, elder: Person, at: dt.datetime | None = None) -> bool:
    """True when ``user`` may look up ``elder``'s results now (an elder counts for themselves)."""
    if not user.is_authenticated:
        return False
    if elder.user_id == user.pk and elder.is_elder:
        return True
    return authorization_for(user, elder, at) is not None


# --- staff scope --------------------------------------------------------------------------


def staff_clinic_ids(user: User, roles: tuple[str, ...] | None = None) -> set[int]:
    if not user.is_authenticated or not user.is_active:
        return set()
    memberships = StaffMembership.objects.filter(user=user)
    if roles:
        memberships = memberships.filter(role__in=roles)
    return set(memberships.values_list("clinic_id", flat=True))


def is_staff_of(user: User, clinic: Clinic | int, roles: tuple[str, ...] | None = None) -> bool:
    clinic_id = clinic if isinstance(clinic, int) else clinic.pk
    return user.is_superuser or clinic_id in staff_clinic_ids(user, roles)


def people_visible_to_staff(user: User) -> QuerySet[Person]:
    if user.is_superuser:
        return Person.objects.all()
    return Person.objects.filter(clinic_id__in=staff_clinic_ids(user))


def authorizations_visible_to_staff(user: User) -> QuerySet[Authorization]:
    if user.is_superuser:
        return Authorization.objects.all()
    return Authorization.objects.filter(clinic_id__in=staff_clinic_ids(user))


def can_manage_authorizations(user: User, clinic: Clinic | int) -> bool:
    return is_staff_of(user, clinic, (StaffMembership.Role.STAFF, StaffMembership.Role.MANAGER))


# --- staff workspace: role x action, scoped to the member's clinics -------------------------
#
# A staff member acts only within the clinics they are a member of, with the rights of their
# role *at that clinic*. Every queryset below and every single-object check (``staff_can``)
# is built from ``ACTION_ROLES`` and the membership table, so a list never shows something
# the detail page would refuse. Superusers are not special here: the workspace is for
# clinic members (superusers use the admin).


class StaffAction:
    VIEW = "view"  # lists, person pages, authorizations, results (read)
    REGISTER = "register"  # elders, guardians, identity checks, login accounts, set-password links
    ENROLL = "enroll"  # OTP devices, backup codes, biometric consent, face templates
    MANAGE_AUTHORIZATIONS = "manage_authorizations"  # register, approve, revoke, suspend, renew
    RECORD_RESULTS = "record_results"  # the result form and the CSV import
    VIEW_SAMPLING_PHOTO = "view_sampling_photo"  # with a typed reason, audited


_DESK = (StaffMembership.Role.STAFF, StaffMembership.Role.MANAGER)
ACTION_ROLES: dict[str, tuple[str, ...]] = {
    StaffAction.VIEW: (*_DESK, StaffMembership.Role.AUDITOR),
    StaffAction.REGISTER: _DESK,
    StaffAction.ENROLL: _DESK,
    StaffAction.MANAGE_AUTHORIZATIONS: _DESK,
    StaffAction.RECORD_RESULTS: _DESK,
    StaffAction.VIEW_SAMPLING_PHOTO: _DESK,
}


def _workspace_clinic_ids_q(user: User, action: str) -> QuerySet[StaffMembership]:
    """Subquery of the clinic ids where ``user`` may do ``action`` (no query of its own)."""
    return StaffMembership.objects.filter(user_id=user.pk, role__in=ACTION_ROLES[action]).values("clinic_id")


def staff_can(user: User, action: str, clinic: Clinic | int) -> bool:
    """May ``user`` do ``action`` at ``clinic``? The single-object twin of the querysets below."""
    if not user.is_authenticated or not user.is_active:
        return False
    clinic_id = clinic if isinstance(clinic, int) else clinic.pk
    return StaffMembership.objects.filter(user_id=user.pk, clinic_id=clinic_id, role__in=ACTION_ROLES[action]).exists()


def staff_actions_at(user: User, clinic: Clinic | int) -> frozenset[str]:
    """Every action ``user`` may do at ``clinic``, in one query (same table as ``staff_can``)."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    clinic_id = clinic if isinstance(clinic, int) else clinic.pk
    roles = set(StaffMembership.objects.filter(user_id=user.pk, clinic_id=clinic_id).values_list("role", flat=True))
    return frozenset(action for action, allowed in ACTION_ROLES.items() if roles.intersection(allowed))


def staff_clinics(user: User, action: str = StaffAction.VIEW) -> QuerySet[Clinic]:
    """Clinics where ``user`` may do ``action``."""
    if not user.is_authenticated or not user.is_active:
        return Clinic.objects.none()
    return Clinic.objects.filter(pk__in=_workspace_clinic_ids_q(user, action))


def has_staff_workspace(user: User) -> bool:
    """True when ``user`` is a member of at least one clinic (any role)."""
    return staff_clinics(user).exists()


def staff_people(user: User, action: str = StaffAction.VIEW) -> QuerySet[Person]:
    """People of the clinics where ``user`` may do ``action``."""
    if not user.is_authenticated or not user.is_active:
        return Person.objects.none()
    return Person.objects.filter(clinic_id__in=_workspace_clinic_ids_q(user, action))


def staff_authorizations(user: User, action: str = StaffAction.VIEW) -> QuerySet[Authorization]:
    if not user.is_authenticated or not user.is_active:
        return Authorization.objects.none()
    return Authorization.objects.filter(clinic_id__in=_workspace_clinic_ids_q(user, action))


def staff_results(user: User, action: str = StaffAction.VIEW) -> QuerySet:
    """Test results recorded at the clinics where ``user`` may do ``action``."""
    from lookups.models import TestResult

    if not user.is_authenticated or not user.is_active:
        return TestResult.objects.none()
    return TestResult.objects.filter(clinic_id__in=_workspace_clinic_ids_q(user, action))


# --- an elder's view of their own authorizations ------------------------------------------


def authorizations_of_elder(user: User, at: dt.datetime | None = None) -> QuerySet[Authorization]:
    """Authorizations in force at ``at`` under which someone may act for ``user`` (as the elder).

    Pending and suspended ones are included too: the elder should see everyone who has been
    registered for them and may ask for any of them to be removed.
    """
    at = at or timezone.now()
    person = _person_of(user)
    if person is None or not person.is_elder:
        return Authorization.objects.none()
    current = active_authorization_q(at) | Q(
        status__in=(Authorization.Status.PENDING, Authorization.Status.SUSPENDED), valid_until__gt=at
    )
    return Authorization.objects.filter(current, elder=person)


def is_elder_user(user: User) -> bool:
    """True when ``user`` is an elder with their own login (the elder's own pages)."""
    return can_look_up_self(user)


# --- audit and oversight ------------------------------------------------------------------

AUDIT_ROLES = (StaffMembership.Role.AUDITOR, StaffMembership.Role.MANAGER)


def audit_clinic_ids(user: User) -> set[int] | None:
    """Clinics whose audit log ``user`` may read: None means every clinic (superuser)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return None
    # Cached on the user object, like Django's own permission cache: one query per request.
    cached = getattr(user, "_kinguard_audit_clinic_ids", None)
    if cached is None:
        cached = frozenset(staff_clinic_ids(user, AUDIT_ROLES))
        user._kinguard_audit_clinic_ids = cached
    return set(cached)


def can_view_audit(user: User, clinic: Clinic | int | None = None) -> bool:
    """Auditors and managers read the audit log of their clinics; ``clinic=None``: of any clinic."""
    clinic_ids = audit_clinic_ids(user)
    if clinic_ids is None:
        return True
    if clinic is None:
        return bool(clinic_ids)
    return (clinic if isinstance(clinic, int) else clinic.pk) in clinic_ids


def can_handle_anomalies(user: User, clinic: Clinic | int | None) -> bool:
    """Acknowledging and resolving an anomaly flag: the same people who may read its clinic's log.

    A flag with no clinic (e.g. a broken audit chain) can only be handled by a superuser.
    """
    if clinic is None:
        return audit_clinic_ids(user) is None
    return can_view_audit(user, clinic)


def audit_scope_q(user: User, prefix: str = "") -> Q | None:
    """Q restricting rows with a ``clinic`` to the user's audit clinics (None: no restriction)."""
    clinic_ids = audit_clinic_ids(user)
    if clinic_ids is None:
        return None
    return Q(**{f"{prefix}clinic_id__in": sorted(clinic_ids)})


def people_visible_to_auditor(user: User) -> QuerySet[Person]:
    """People whose access report ``user`` may read (auditors' and managers' clinics)."""
    scope = audit_scope_q(user)
    return Person.objects.all() if scope is None else Person.objects.filter(scope)


def authorizations_visible_to_auditor(user: User) -> QuerySet[Authorization]:
    scope = audit_scope_q(user)
    return Authorization.objects.all() if scope is None else Authorization.objects.filter(scope)
