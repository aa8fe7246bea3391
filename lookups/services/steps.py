"""The guardian's steps of a lookup: start, OTP, face submission, status, cancel, sign-out.

Transitions lock the lookup row (``common._locked_lookup``); see ``lookups.services``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from kombu.exceptions import OperationalError as BrokerUnavailable

from guardians import permissions
from guardians.models import Person, User

from .. import capture_budget, task_queue
from ..audit import Actor, audit_record
from ..faces.errors import ProbeRejected
from ..faces.images import load_probe_image
from ..messages import face_reason_message, refusal_message
from ..models import FaceCheck, LookupRequest
from ..session_binding import binding_matches
from .common import (
    FaceCheckingUnavailable,
    LookupNotFound,
    LookupRefused,
    State,
    _audit_step,
    _end,
    _expire_if_due,
    _guard,
    _locked_lookup,
    _now,
    _touch,
)
from .face_checks import face_check_not_queued
from .probes import _probe_path, _write_probe, delete_probe

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)


def lookup_start(
    *, actor: Actor, elder_public_id: uuid.UUID | str, session_binding: str | None = None
) -> LookupRequest:
    """Open a lookup for an elder the actor may act for. Anyone else's elder: LookupNotFound."""
    user = actor.user
    now = _now()
    try:
        elder = Person.objects.select_related("clinic").get(public_id=elder_public_id)
    except (Person.DoesNotExist, ValueError, TypeError) as exc:
        raise LookupNotFound from exc
    requester_person = Person.objects.filter(user=user).first() if user else None
    if user is None or requester_person is None or not permissions.can_act_for(user, elder, now):
        audit_record(actor=actor, action="lookup.start_refused", outcome="not_authorized", details={})
        raise LookupNotFound
    authorization = None if elder.pk == requester_person.pk else permissions.authorization_for(user, elder, now)
    with transaction.atomic():
        lookup = LookupRequest.objects.create(
            requester=user,
            requester_person=requester_person,
            elder=elder,
            authorization=authorization,
            state=State.AWAITING_OTP,
            session_binding=session_binding or "",
            created_at=now,
            updated_at=now,
        )
        audit_record(
            actor=actor,
            action="lookup.started",
            outcome=State.AWAITING_OTP,
            subject=elder,
            target=lookup,
            clinic=elder.clinic,
            details={"authorization": authorization.pk if authorization else None, "self": authorization is None},
        )
    return lookup


# --- OTP ----------------------------------------------------------------------------------


def _was_replayed(device: TOTPDevice, token: str) -> bool:
    """True when ``token`` is a valid code that was already used (not merely wrong)."""
    if not token.isdigit():
        return False
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return bool(totp.verify(int(token), device.tolerance)) and totp.t() <= device.last_t + device.tolerance


def _backup_code_accepted(user: User, token: str) -> bool:
    """Consume a printed 8-digit backup code (django-otp static device, throttled) if it matches.

    Only tried for 8-digit input, after the TOTP device's throttle allowed the attempt; a
    wrong backup code then also counts as a failure on the TOTP device.
    """
    from django_otp.plugins.otp_static.models import StaticDevice

    if len(token) != 8 or not token.isdigit():
        return False
    device = StaticDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
    return device is not None and device.verify_token(token)


def lookup_verify_otp(
    *, actor: Actor, lookup_id: uuid.UUID | str, token: str, session_binding: str | None = None
) -> LookupRequest:
    """awaiting_otp → awaiting_face on a fresh, correct TOTP code (or an unused backup code).

    The device row is locked too, so a code raced from two tabs is accepted exactly once
    (django-otp's ``last_t``); failures feed django-otp's exponential throttling.
    """
    token = (token or "").strip().replace(" ", "")
    now = _now()
    refusal: LookupRefused | None = None
    with transaction.atomic():
        lookup = _locked_lookup(lookup_id, actor.user, session_binding)
        refusal = _guard(lookup, actor, now, {State.AWAITING_OTP})
        if refusal is None:
            device = TOTPDevice.objects.select_for_update().filter(user=lookup.requester, confirmed=True).first()
            audit = partial(audit_record, actor=actor, subject=lookup.elder, target=lookup, clinic=lookup.elder.clinic)
            if device is None:
                refusal = LookupRefused("no_device", refusal_message("no_device"))
                audit(action="otp.failed", outcome="no_device")
            else:
                allowed, info = device.verify_is_allowed()
                if not allowed:
                    locked_until = (info or {}).get("locked_until")
                    refusal = LookupRefused(
                        "throttled",
                        refusal_message("throttled"),
                        retry_at=locked_until,
                    )
                    audit(action="otp.throttled", outcome="throttled")
                elif (backup := _backup_code_accepted(lookup.requester, token)) or device.verify_token(token):
                    lookup.state = State.AWAITING_FACE
                    lookup.otp_verified_at = now
                    _touch(lookup, ["state", "otp_verified_at"])
                    audit(action="otp.verified", outcome="backup_code" if backup else "ok")
                else:
                    replayed = _was_replayed(device, token)
                    code = "replayed" if replayed else "wrong_code"
                    refusal = LookupRefused(code, refusal_message(code))
                    audit(action="otp.failed", outcome=code)
    if refusal is not None:
        raise refusal
    return lookup


# --- face ---------------------------------------------------------------------------------


def face_retry_not_before(user: User, now: dt.datetime | None = None) -> dt.datetime | None:
    """End of the account's face back-off delay, or None when a check may be submitted now."""
    now = now or _now()
    if user.face_retry_not_before and user.face_retry_not_before > now:
        return user.face_retry_not_before
    return None


def lookup_submit_face(
    *,
    actor: Actor,
    lookup_id: uuid.UUID | str,
    images: Sequence[bytes],
    session_binding: str | None = None,
    challenge_nonce: str | None = None,
) -> FaceCheck:
    """awaiting_face → checking_face: validate the photo(s) and queue a face check.

    The upload is decoded and normalized here (content-sniffed, size- and bomb-checked,
    EXIF-rotated, RGB, downscaled) so bad files get an immediate answer; only the
    normalized pixels are written, to a private file the worker deletes when the check
    ends. If the broker refuses the task, the lookup returns to awaiting_face and
    ``FaceCheckingUnavailable`` is raised: nothing is lost, nothing is granted.

    With ``KINGUARD_FACE_LIVENESS`` (always on in production) a camera capture must name the
    challenge the page was shown (``challenge_nonce``): it is consumed once here (another
    lookup's, a used or an expired nonce raises ``challenges.ChallengeRefused``) and its
    actions go to the worker with the check, which decides with ``faces.check_capture``.
    """
    if not images:
        raise LookupRefused("empty", refusal_message("empty"))
    if len(images) == 1 and not settings.KINGUARD_ALLOW_STILL_UPLOAD:
        # A single still defeats the burst's replay check: only where the deployment allows it.
        raise LookupRefused("still_not_allowed", face_reason_message("still_not_allowed"))
    if len(images) > 1:
        try:  # the burst's decode budget, by headers only (the form checks it too)
            capture_budget.check_capture(images)
        except capture_budget.CaptureOverBudget as exc:
            raise LookupRefused(exc.code, face_reason_message(exc.code)) from exc
    actions: tuple[str, ...] = ()
    if len(images) > 1 and settings.KINGUARD_FACE_LIVENESS:
        from .. import challenges

        # Ownership first, read without a lock (the same rule as _locked_lookup): anyone
        # else's lookup, or this one from another session, is missing; consume locks it.
        owned = LookupRequest.objects.filter(pk=lookup_id, requester=actor.user).first() if actor.user else None
        if owned is None or not binding_matches(owned.session_binding, session_binding):
            raise LookupNotFound
        actions = challenges.challenge_consume(owned, challenge_nonce or "", actor=actor)
    # Decode before taking any lock: bad files are refused without touching the lookup.
    try:
        frames = [load_probe_image(data) for data in images]
    except ProbeRejected as exc:
        with transaction.atomic():
            lookup = _locked_lookup(lookup_id, actor.user, session_binding)
            _audit_step(
                lookup,
                actor=actor,
                action="face.upload_refused",
                outcome=exc.code,
            )
        raise LookupRefused(exc.code, face_reason_message(exc.code)) from exc

    now = _now()
    refusal: LookupRefused | None = None
    check: FaceCheck | None = None
    path: Path | None = None
    try:
        with transaction.atomic():
            lookup = _locked_lookup(lookup_id, actor.user, session_binding)
            refusal = _guard(lookup, actor, now, {State.AWAITING_FACE})
            user = User.objects.select_for_update().get(pk=lookup.requester_id)
            wait_until = face_retry_not_before(user, now) if refusal is None else None
            if wait_until is not None:
                refusal = LookupRefused(
                    "face_delay",
                    refusal_message("face_delay"),
                    retry_at=wait_until,
                )
            if refusal is None:
                check = FaceCheck(lookup=lookup, created_at=now, challenge=",".join(actions))
                path = _probe_path(check.id)
                _write_probe(path, frames)
                check.probe_path = str(path)
                check.save(force_insert=True)
                lookup.state = State.CHECKING_FACE
                lookup.face_attempts += 1
                _touch(lookup, ["state", "face_attempts"])
                _audit_step(
                    lookup,
                    actor=actor,
                    action="face.submitted",
                    outcome="queued",
                    target=check,
                    details={
                        "lookup": str(lookup.pk),
                        "frames": len(frames),
                        "attempt": lookup.face_attempts,
                        "liveness": ",".join(actions) if actions else "none",
                    },
                )
                task_queue.publish_on_commit(task_queue.RUN_FACE_CHECK, str(check.id))
    except BrokerUnavailable as exc:
        # The commit happened; only the publish failed. Undo the step in a new transaction.
        logger.warning("face check %s could not be queued: broker unavailable", check.id if check else None)
        if check is not None:
            face_check_not_queued(check_id=check.id)
        raise FaceCheckingUnavailable from exc
    except BaseException:
        if path is not None and (check is None or not FaceCheck.objects.filter(pk=check.pk).exists()):
            delete_probe(path)
        raise
    if refusal is not None:
        raise refusal
    if check is None:  # not reached: without a refusal the check was created
        raise RuntimeError("the face step created no check")
    return check


def lookup_status(*, actor: Actor, lookup_id: uuid.UUID | str, session_binding: str | None = None) -> LookupRequest:
    """Current state for the progress page (expires it first if due)."""
    with transaction.atomic():
        lookup = _locked_lookup(lookup_id, actor.user, session_binding)
        _expire_if_due(lookup, actor, _now())
    return lookup


def lookup_cancel(*, actor: Actor, lookup_id: uuid.UUID | str, session_binding: str | None = None) -> LookupRequest:
    with transaction.atomic():
        lookup = _locked_lookup(lookup_id, actor.user, session_binding)
        if lookup.state not in LookupRequest.FINAL_STATES:
            _end(lookup, state=State.CANCELLED, reason="by_user", actor=actor, action="lookup.cancelled")
    return lookup


# --- session-bound grants (lookups.session_binding) ---------------------------------------


def lookups_end_for_session(*, actor: Actor, session_binding: str) -> int:
    """Sign-out: end every open lookup (a live grant included) started in that session.

    The binding can no longer match once the session is flushed; this also closes the rows
    and audits each end (``lookup.cancelled``, reason ``signed_out``). Returns how many.
    """
    if not session_binding or actor.user is None:
        return 0
    ended = 0
    open_ids = list(
        LookupRequest.objects.filter(requester=actor.user, session_binding=session_binding)
        .exclude(state__in=LookupRequest.FINAL_STATES)
        .values_list("pk", flat=True)
    )
    for lookup_id in open_ids:
        with transaction.atomic():
            lookup = _locked_lookup(lookup_id, actor.user, session_binding)
            if lookup.state not in LookupRequest.FINAL_STATES:
                _end(lookup, state=State.CANCELLED, reason="signed_out", actor=actor, action="lookup.cancelled")
                ended += 1
    return ended
