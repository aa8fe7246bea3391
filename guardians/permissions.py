"""The one rule set for who may see and do what.

Querysets and single-object checks are built from the same functions, so a list can never
show something that the detail page would refuse (or the reverse). Anything a user may not
reach is answered exactly like something that does not exist (404).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

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


# --- staff: "may this user do ACTION at this clinic" -----------------------------------------
#
# One function (``staff_can``), one role table (``ACTION_ROLES``), one superuser rule
# (``SUPERUSER_ACTIONS``). A staff member acts only within the clinics they are a member of,
# with the rights of their role *at that clinic*. A superuser may do the oversight reads
# (the read-only admin, the audit log and its anomaly flags) at every clinic, and nothing
# else without a membership: the desk (``/staff/``) is for clinic members. Every queryset
# below and every single-object check is built from these three, so a list never shows
# something the detail page (or the service) would refuse, and the services enforce the
# same answer the views use to choose what to show.


class StaffAction:
    VIEW = "view"  # lists, person pages, authorizations, results (read)
    REGISTER = "register"  # elders, guardians, identity checks, login accounts, set-password links
    ENROLL = "enroll"  # OTP devices, backup codes, biometric consent, face templates
    MANAGE_AUTHORIZATIONS = "manage_authorizations"  # register, approve, revoke, suspend, renew
    RECORD_RESULTS = "record_results"  # the result form and the CSV import
    VIEW_SAMPLING_PHOTO = "view_sampling_photo"  # with a typed reason, audited
    READ_RECORDS = "read_records"  # the read-only admin (auditors' room)
    READ_AUDIT = "read_audit"  # the audit log, access reports, exports, anomaly flags


_DESK = (StaffMembership.Role.STAFF, StaffMembership.Role.MANAGER)
_ALL_ROLES = (*_DESK, StaffMembership.Role.AUDITOR)
ACTION_ROLES: dict[str, tuple[str, ...]] = {
    StaffAction.VIEW: _ALL_ROLES,
    StaffAction.REGISTER: _DESK,
    StaffAction.ENROLL: _DESK,
    StaffAction.MANAGE_AUTHORIZATIONS: _DESK,
    StaffAction.RECORD_RESULTS: _DESK,
    StaffAction.VIEW_SAMPLING_PHOTO: _DESK,
    StaffAction.READ_RECORDS: _ALL_ROLES,
    StaffAction.READ_AUDIT: (StaffMembership.Role.AUDITOR, StaffMembership.Role.MANAGER),
}

# The one superuser rule: these actions at every clinic; any other only through a membership.
SUPERUSER_ACTIONS: frozenset[str] = frozenset({StaffAction.READ_RECORDS, StaffAction.READ_AUDIT})


def _clinic_id(clinic: Clinic | int) -> int:
    return clinic if isinstance(clinic, int) else clinic.pk


def _superuser_may(user: User, action: str) -> bool:
    return user.is_superuser and action in SUPERUSER_ACTIONS


def _workspace_clinic_ids_q(user: User, action: str) -> QuerySet[StaffMembership, Any]:
    """Subquery of the clinic ids where ``user``'s memberships allow ``action`` (no query of its own)."""
    return StaffMembership.objects.filter(user_id=user.pk, role__in=ACTION_ROLES[action]).values("clinic_id")


def staff_can(user: User | None, action: str, clinic: Clinic | int) -> bool:
    """May ``user`` do ``action`` at ``clinic``? The one answer; services enforce it."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if _superuser_may(user, action):
        return True
    return StaffMembership.objects.filter(
        user_id=user.pk, clinic_id=_clinic_id(clinic), role__in=ACTION_ROLES[action]
    ).exists()


def staff_actions_at(user: User | None, clinic: Clinic | int) -> frozenset[str]:
    """Every action ``user`` may do at ``clinic``, in one query (exactly ``staff_can`` per action)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    roles = set(
        StaffMembership.objects.filter(user_id=user.pk, clinic_id=_clinic_id(clinic)).values_list("role", flat=True)
    )
    return frozenset(
        action
        for action, allowed in ACTION_ROLES.items()
        if roles.intersection(allowed) or _superuser_may(user, action)
    )


def clinic_ids_where(user: User | None, action: str) -> set[int] | None:
    """The clinic ids where ``user`` may do ``action``; ``None`` means every clinic."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    if _superuser_may(user, action):
        return None
    return set(_workspace_clinic_ids_q(user, action).values_list("clinic_id", flat=True))


def staff_clinics(user: User | None, action: str = StaffAction.VIEW) -> QuerySet[Clinic]:
    """Clinics where ``user`` may do ``action``."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Clinic.objects.none()
    if _superuser_may(user, action):
        return Clinic.objects.all()
    return Clinic.objects.filter(pk__in=_workspace_clinic_ids_q(user, action))


def has_staff_workspace(user: User | None) -> bool:
    """True when ``user`` may open ``/staff/`` at all: VIEW at one clinic (a membership, any role)."""
    return staff_clinics(user, StaffAction.VIEW).exists()


def _scoped(queryset: QuerySet, user: User | None, action: str, field: str = "clinic_id") -> QuerySet:
    if user is None or not user.is_authenticated or not user.is_active:
        return queryset.none()
    if _superuser_may(user, action):
        return queryset
    return queryset.filter(**{f"{field}__in": _workspace_clinic_ids_q(user, action)})


def staff_people(user: User, action: str = StaffAction.VIEW) -> QuerySet[Person]:
    """People of the clinics where ``user`` may do ``action``."""
    return _scoped(Person.objects.all(), user, action)


def staff_authorizations(user: User, action: str = StaffAction.VIEW) -> QuerySet[Authorization]:
    return _scoped(Authorization.objects.all(), user, action)


def staff_results(user: User, action: str = StaffAction.VIEW) -> QuerySet:
    """Test results recorded at the clinics where ``user`` may do ``action``."""
    from lookups.models import TestResult

    return _scoped(TestResult.objects.all(), user, action)


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

AUDIT_ROLES = ACTION_ROLES[StaffAction.READ_AUDIT]


def audit_clinic_ids(user: User) -> set[int] | None:
    """Clinics whose audit log ``user`` may read (``READ_AUDIT``): None means every clinic."""
    if not user.is_authenticated or not user.is_active:
        return set()
    # Cached on the user object, like Django's own permission cache: one query per request.
    if not hasattr(user, "_kinguard_audit_clinic_ids"):
        ids = clinic_ids_where(user, StaffAction.READ_AUDIT)
        # A per-request memo on the user object (request.user may be a lazy proxy), not a model field.
        setattr(user, "_kinguard_audit_clinic_ids", None if ids is None else frozenset(ids))  # noqa: B010
    cached: frozenset[int] | None = getattr(user, "_kinguard_audit_clinic_ids")  # noqa: B009  # undeclared attribute
    return None if cached is None else set(cached)


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
