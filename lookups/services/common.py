"""The lookup state machine: one service function per transition.

awaiting_otp → awaiting_face → checking_face → granted → expired; any non-final state →
denied / cancelled / expired.

Every transition locks the lookup row (``select_for_update`` inside ``atomic``; lock order
is always lookup, then face check, then user), refuses illegal starting states, re-checks
the authorization, writes its audit event in the same transaction and publishes Celery
work after commit (``lookups.task_queue.publish_on_commit``). Refusals are decided inside
the transaction but raised after it commits, so the denial and its audit event are kept.


This module: the shared errors and the lock/guard helpers every transition uses.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from guardians.models import User

from ..audit import Actor, audit_record
from ..messages import refusal_message
from ..models import FaceCheck, LookupRequest
from ..session_binding import binding_matches

if TYPE_CHECKING:
    pass


State = LookupRequest.State
Outcome = FaceCheck.Outcome


class LookupRefused(Exception):
    """A step was refused. ``code`` is stable for programs, ``str()`` is for people."""

    def __init__(self, code: str, message: str, *, retry_at: dt.datetime | None = None):
        super().__init__(message)
        self.code = code
        self.retry_at = retry_at


class LookupNotFound(Exception):
    """No such lookup for this user. Views answer 404, as for a lookup that does not exist."""


class FaceCheckingUnavailable(Exception):
    """The broker refused the face check. Nothing was lost; the lookup is back at the face step."""


def _now() -> dt.datetime:
    return timezone.now()


def _touch(lookup: LookupRequest, fields: list[str]) -> None:
    lookup.updated_at = _now()
    lookup.save(update_fields=[*fields, "updated_at"])


def _locked_lookup(lookup_id: uuid.UUID | str, user: User | None, session_binding: str | None = None) -> LookupRequest:
    """Lock and return the lookup; for a user, only their own, from the session that started it.

    Others' ids, and the user's own lookups seen from another session, look missing
    (``lookups.session_binding``).
    """
    try:
        queryset = LookupRequest.objects.select_for_update()
        if user is not None:
            queryset = queryset.filter(requester=user)
        lookup = queryset.get(pk=lookup_id)
    except (LookupRequest.DoesNotExist, ValueError) as exc:
        raise LookupNotFound from exc
    if user is not None and not binding_matches(lookup.session_binding, session_binding):
        raise LookupNotFound
    return lookup


def _audit_step(
    lookup: LookupRequest,
    *,
    actor: Actor,
    action: str,
    outcome: str,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit one step of ``lookup``: the elder is the subject, their clinic the clinic."""
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        subject=lookup.elder,
        target=lookup if target is None else target,
        clinic=lookup.elder.clinic,
        details=details,
    )


def _end(lookup: LookupRequest, *, state: str, reason: str, actor: Actor, action: str) -> None:
    lookup.state = state
    lookup.ended_at = _now()
    lookup.end_reason = reason
    _touch(lookup, ["state", "ended_at", "end_reason"])
    _audit_step(
        lookup,
        actor=actor,
        action=action,
        outcome=state,
        details={"reason": reason},
    )


def _still_allowed(lookup: LookupRequest, now: dt.datetime) -> bool:
    """The authorization (or self-lookup right) behind this lookup still holds."""
    authorization = lookup.authorization  # no query when there is none
    if authorization is None:
        return lookup.elder.user_id == lookup.requester_id and lookup.elder.is_elder
    authorization.refresh_from_db(fields=["status", "valid_from", "valid_until"])
    return authorization.is_active_at(now) and authorization.guardian.user_id == lookup.requester_id


def expiry_due(lookup: LookupRequest, now: dt.datetime) -> tuple[str, str] | None:
    """(end reason, audit action) when the grant or the time to finish has run out, else None.

    A pure read of ``lookup`` (no lock, nothing written): selectors use it to decide whether a
    page load needs the locked transition at all.
    """
    if lookup.state in LookupRequest.FINAL_STATES:
        return None
    if lookup.state == State.GRANTED:
        if lookup.grant_expires_at and now >= lookup.grant_expires_at:
            return "grant_ended", "grant.expired"
        return None
    if now >= lookup.created_at + dt.timedelta(minutes=settings.KINGUARD_LOOKUP_TTL_MINUTES):
        return "not_finished_in_time", "lookup.expired"
    return None


def _expire_if_due(lookup: LookupRequest, actor: Actor, now: dt.datetime) -> bool:
    """Expire a lookup whose grant or whose time to finish has run out. Caller holds the lock."""
    due = expiry_due(lookup, now)
    if due is None:
        return False
    reason, action = due
    _end(lookup, state=State.EXPIRED, reason=reason, actor=actor, action=action)
    return True


def _guard(lookup: LookupRequest, actor: Actor, now: dt.datetime, expected: set[str]) -> LookupRefused | None:
    """Common checks before a step. Returns the refusal to raise after commit, if any."""
    if _expire_if_due(lookup, actor, now):
        return LookupRefused("expired", refusal_message("expired"))
    if lookup.state in LookupRequest.FINAL_STATES:
        return LookupRefused("finished", refusal_message("finished"))
    if not _still_allowed(lookup, now):
        _end(lookup, state=State.DENIED, reason="authorization_inactive", actor=actor, action="lookup.denied")
        return LookupRefused("not_authorized", refusal_message("not_authorized"))
    if lookup.state not in expected:
        return LookupRefused("wrong_step", refusal_message("wrong_step"))
    return None
