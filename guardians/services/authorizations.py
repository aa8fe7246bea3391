"""Guardians services: authorizations."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from lookups.audit import Actor, audit_record
from lookups.oversight.notices import notice_authorization_changed

from .. import permissions
from ..models import Authorization, Person, RemovalRequest
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
    staff_user,
)

if TYPE_CHECKING:
    pass


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
    require_staff_can(actor, permissions.StaffAction.MANAGE_AUTHORIZATIONS, elder.clinic_id)
    # The same-clinic rule lives here (not only in the workspace form), so every caller has it.
    if guardian.clinic_id != elder.clinic_id:
        raise NotPermitted("The guardian and the elder must be registered at the same clinic.")
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
            registered_by=staff_user(actor),
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
        staff = require_staff_can(actor, permissions.StaffAction.MANAGE_AUTHORIZATIONS, authorization.clinic_id)
        if authorization.status != Authorization.Status.PENDING:
            raise IllegalState(f"Only a pending authorization can be approved (this one is {authorization.status}).")
        if authorization.registered_by_id == staff.pk:
            raise NotPermitted("A second staff member must approve: you registered this authorization.")
        now = timezone.now()
        authorization.status = Authorization.Status.ACTIVE
        authorization.approved_by = staff
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
        require_staff_can(actor, permissions.StaffAction.MANAGE_AUTHORIZATIONS, authorization.clinic_id)
        if authorization.status not in allowed_from:
            raise IllegalState(f"This authorization is {authorization.status}; that change is not possible.")
        old_status = authorization.status
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
            details={
                "reason": reason[:300],
                "requested_by": requested_by,
                "old_status": old_status,
                "new_status": new_status,
            },
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
        require_staff_can(actor, permissions.StaffAction.MANAGE_AUTHORIZATIONS, authorization.clinic_id)
        if authorization.status not in (S.ACTIVE, S.SUSPENDED, S.EXPIRED):
            raise IllegalState(f"This authorization is {authorization.status}; it cannot be renewed.")
        if valid_until <= timezone.now():
            raise ServiceError("The new end date must be in the future.")
        old_status, old_valid_until = authorization.status, authorization.valid_until
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
            details={
                "valid_until": valid_until,
                "old_valid_until": old_valid_until,
                "old_status": old_status,
                "new_status": S.ACTIVE,
            },
        )
    return authorization


# --- face enrollment ----------------------------------------------------------------------


def authorization_removal_request(*, actor: Actor, authorization_id: int, note: str = "") -> bool:
    """The elder asks the clinic to remove one of their guardians' authorizations.

    Nothing changes on the authorization itself: staff must revoke it after checking the
    elder's ID in person (``authorization_revoke``). The request is an audit event
    (``authorization.removal_requested``, clinic set) and a ``RemovalRequest`` row, which the
    staff workspace lists. Only the
    elder of a pending, active or suspended authorization may ask. The authorization row is
    locked, so a request is recorded once per authorization: returns True when recorded now,
    False when it had already been requested.
    """
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
        if RemovalRequest.objects.filter(authorization=authorization).exists():
            return False
        note = (note or "").strip()[:300]
        RemovalRequest.objects.create(authorization=authorization, requested_by=actor.user, note=note)
        audit_record(
            actor=actor,
            action=REMOVAL_REQUEST_ACTION,
            outcome="requested",
            subject=elder,
            target=authorization,
            clinic=authorization.clinic,
            details={"guardian": authorization.guardian_id, "note": note},
        )
    return True
