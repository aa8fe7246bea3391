"""Reads for the staff workspace. Every queryset starts from ``guardians.permissions``.

Lists are built so that a page costs a constant number of queries whatever its length
(``select_related`` for the rows' foreign keys, ``Exists`` annotations instead of per-row
lookups). Name search is a staff-only feature, always inside the staff member's clinics;
nothing here is reachable by a guardian.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from lookups.models import TestResult

from . import permissions
from .models import Authorization, FaceConsent, FaceEnrollment, IdentityCheck, Person, RemovalRequest

if TYPE_CHECKING:
    from .models import User

A = permissions.StaffAction
EXPIRING_DAYS = 30


def _search(queryset: QuerySet, query: str, *fields: str) -> QuerySet:
    query = " ".join((query or "").split())[:100]
    if not query:
        return queryset
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": query})
    return queryset.filter(condition)


def people_list(user: User, *, query: str = "", role: str = "") -> QuerySet[Person]:
    """People of the staff member's clinics, searchable by name, with enrollment flags."""
    people = permissions.staff_people(user, A.VIEW).select_related("clinic", "user")
    if role == "elder":
        people = people.filter(is_elder=True)
    elif role == "guardian":
        people = people.filter(is_guardian=True)
    people = _search(people, query, "full_name")
    return people.annotate(
        has_face=Exists(FaceEnrollment.objects.filter(person=OuterRef("pk"))),
        has_device=Exists(TOTPDevice.objects.filter(user_id=OuterRef("user_id"), confirmed=True)),
    ).order_by("full_name", "pk")


def person_for(user: User, public_id: uuid.UUID | str, action: str = A.VIEW) -> Person | None:
    """The person with this public id if ``user`` may do ``action`` for them, else None (views: 404)."""
    return permissions.staff_people(user, action).select_related("clinic", "user").filter(public_id=public_id).first()


@dataclass(frozen=True)
class PersonPage:
    person: Person
    identity_checks: list[IdentityCheck]
    face: FaceEnrollment | None
    devices: list[TOTPDevice]
    backup_codes_left: int
    pending_consent: FaceConsent | None
    as_elder: list[Authorization]
    as_guardian: list[Authorization]
    results: list[TestResult]
    results_total: int


def person_page(person: Person, now: dt.datetime | None = None) -> PersonPage:
    """Everything the person page shows, in a fixed number of queries."""
    from .services import face_consent_pending

    authorizations = list(
        Authorization.objects.filter(Q(elder=person) | Q(guardian=person))
        .select_related("elder", "guardian", "registered_by", "approved_by")
        .order_by("-registered_at")
    )
    devices: list[TOTPDevice] = []
    backup = 0
    if person.user_id:
        devices = list(TOTPDevice.objects.filter(user_id=person.user_id).order_by("-confirmed", "-id"))
        backup = StaticToken.objects.filter(device__user_id=person.user_id, device__confirmed=True).count()
    results: list[TestResult] = []
    total = 0
    if person.is_elder:
        results = list(
            TestResult.objects.filter(elder=person).select_related("recorded_by").order_by("-sampled_at")[:20]
        )
        total = TestResult.objects.filter(elder=person).count()
    return PersonPage(
        person=person,
        identity_checks=list(person.identity_checks.select_related("checked_by").order_by("-checked_at")),
        face=FaceEnrollment.objects.filter(person=person).select_related("enrolled_by", "consent").first(),
        devices=devices,
        backup_codes_left=backup,
        pending_consent=face_consent_pending(person, now),
        as_elder=[a for a in authorizations if a.elder_id == person.pk],
        as_guardian=[a for a in authorizations if a.guardian_id == person.pk],
        results=results,
        results_total=total,
    )


AUTHORIZATION_VIEWS = {
    "pending": gettext_lazy("Waiting for approval"),
    "removal": gettext_lazy("Elders asked to remove"),
    "expiring": lazy(lambda: gettext("Ending in the next %(days)d days") % {"days": EXPIRING_DAYS}, str)(),
    "active": gettext_lazy("Active"),
    "all": gettext_lazy("All"),
}


def removal_requested_q() -> Q:
    """Authorizations still in force whose elder asked for their removal (a ``RemovalRequest``)."""
    requested = RemovalRequest.objects.filter(authorization_id=OuterRef("pk"))
    S = Authorization.Status
    return Exists(requested) & Q(status__in=(S.PENDING, S.ACTIVE, S.SUSPENDED))


def authorizations_list(
    user: User, *, view: str = "pending", query: str = "", now: dt.datetime | None = None
) -> QuerySet[Authorization]:
    """The pending-approval queue, the expiring list, or all, within the staff member's clinics."""
    now = now or timezone.now()
    S = Authorization.Status
    items = permissions.staff_authorizations(user, A.VIEW).select_related(
        "elder", "guardian", "clinic", "registered_by", "approved_by"
    )
    if view == "pending":
        items = items.filter(status=S.PENDING).order_by("registered_at", "pk")
    elif view == "removal":
        items = items.filter(removal_requested_q()).order_by("registered_at", "pk")
    elif view == "expiring":
        items = items.filter(
            permissions.active_authorization_q(now), valid_until__lte=now + dt.timedelta(days=EXPIRING_DAYS)
        ).order_by("valid_until", "pk")
    elif view == "active":
        items = items.filter(permissions.active_authorization_q(now)).order_by("elder__full_name", "pk")
    else:
        items = items.order_by("-registered_at", "-pk")
    return _search(items, query, "elder__full_name", "guardian__full_name")


def authorization_for(user: User, pk: int, action: str = A.VIEW) -> Authorization | None:
    return (
        permissions.staff_authorizations(user, action)
        .select_related("elder", "guardian", "clinic", "registered_by", "approved_by", "ended_by")
        .filter(pk=pk)
        .first()
    )


def authorization_counts(user: User, now: dt.datetime | None = None) -> dict[str, int]:
    """Pending (and of those, registered by someone else) and expiring counts, in one query."""
    now = now or timezone.now()
    S = Authorization.Status
    return permissions.staff_authorizations(user, A.VIEW).aggregate(
        pending=Count("pk", filter=Q(status=S.PENDING)),
        pending_for_me=Count("pk", filter=Q(status=S.PENDING) & ~Q(registered_by_id=user.pk)),
        removal=Count("pk", filter=removal_requested_q()),
        expiring=Count(
            "pk",
            filter=permissions.active_authorization_q(now) & Q(valid_until__lte=now + dt.timedelta(days=EXPIRING_DAYS)),
        ),
    )


def guardian_choices(user: User, *, elder: Person | None, query: str = "") -> QuerySet[Person]:
    """Guardians an authorization may be registered for (same clinics), searchable by name."""
    people = permissions.staff_people(user, A.MANAGE_AUTHORIZATIONS).filter(is_guardian=True)
    if elder is not None:
        people = people.filter(clinic_id=elder.clinic_id).exclude(pk=elder.pk)
    return _search(people.select_related("clinic"), query, "full_name").order_by("full_name", "pk")


def elder_choices(user: User, *, guardian: Person | None, query: str = "") -> QuerySet[Person]:
    people = permissions.staff_people(user, A.MANAGE_AUTHORIZATIONS).filter(is_elder=True)
    if guardian is not None:
        people = people.filter(clinic_id=guardian.clinic_id).exclude(pk=guardian.pk)
    return _search(people.select_related("clinic"), query, "full_name").order_by("full_name", "pk")


def results_list(user: User, *, query: str = "") -> QuerySet[TestResult]:
    results = permissions.staff_results(user, A.VIEW).select_related("elder", "clinic")
    return _search(results, query, "elder__full_name").order_by("-sampled_at", "-pk")


def result_for(user: User, pk: int, action: str = A.VIEW) -> TestResult | None:
    return permissions.staff_results(user, action).select_related("elder", "clinic").filter(pk=pk).first()


def removal_requested_ids(authorization_ids: Iterable[int]) -> set[int]:
    """Which of these authorizations the elder asked to remove (the ``RemovalRequest`` table)."""
    return set(
        RemovalRequest.objects.filter(authorization_id__in=list(authorization_ids)).values_list(
            "authorization_id", flat=True
        )
    )
