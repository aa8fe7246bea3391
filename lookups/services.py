"""The lookup state machine: one service function per transition.

awaiting_otp → awaiting_face → checking_face → granted → expired; any non-final state →
denied / cancelled / expired.

Every transition locks the lookup row (``select_for_update`` inside ``atomic``; lock order
is always lookup, then face check, then user), refuses illegal starting states, re-checks
the authorization, writes its audit event in the same transaction and enqueues Celery
work with ``delay_on_commit``. Refusals are decided inside the transaction but raised after
it commits, so the denial and its audit event are kept.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from kombu.exceptions import OperationalError as BrokerUnavailable

from guardians import permissions
from guardians.models import Person, User
from guardians.services import face_template_of

from . import capture_budget
from .audit import Actor, AuditEntry, audit_record, audit_record_many
from .faces import burst, detection, matching
from .faces.errors import ProbeRejected
from .faces.images import load_probe_image
from .models import FaceCheck, LookupRequest, TestResult
from .oversight.notices import notice_results_viewed
from .session_binding import binding_matches

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)
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


@dataclass(frozen=True)
class ResultsView:
    lookup: LookupRequest
    results: list[TestResult]


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
    target=None,
    details: dict | None = None,
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
    if lookup.authorization_id is None:
        return lookup.elder.user_id == lookup.requester_id and lookup.elder.is_elder
    authorization = lookup.authorization
    authorization.refresh_from_db(fields=["status", "valid_from", "valid_until"])
    return authorization.is_active_at(now) and authorization.guardian.user_id == lookup.requester_id


def _expire_if_due(lookup: LookupRequest, actor: Actor, now: dt.datetime) -> bool:
    """Expire a lookup whose grant or whose time to finish has run out. Caller holds the lock."""
    if lookup.state in LookupRequest.FINAL_STATES:
        return False
    if lookup.state == State.GRANTED:
        if lookup.grant_expires_at and now >= lookup.grant_expires_at:
            _end(lookup, state=State.EXPIRED, reason="grant_ended", actor=actor, action="grant.expired")
            return True
        return False
    if now >= lookup.created_at + dt.timedelta(minutes=settings.KINGUARD_LOOKUP_TTL_MINUTES):
        _end(lookup, state=State.EXPIRED, reason="not_finished_in_time", actor=actor, action="lookup.expired")
        return True
    return False


def _guard(lookup: LookupRequest, actor: Actor, now: dt.datetime, expected: set[str]) -> LookupRefused | None:
    """Common checks before a step. Returns the refusal to raise after commit, if any."""
    if _expire_if_due(lookup, actor, now):
        return LookupRefused("expired", _("This lookup has expired. Please start a new one."))
    if lookup.state in LookupRequest.FINAL_STATES:
        return LookupRefused("finished", _("This lookup has ended. Please start a new one."))
    if not _still_allowed(lookup, now):
        _end(lookup, state=State.DENIED, reason="authorization_inactive", actor=actor, action="lookup.denied")
        return LookupRefused("not_authorized", _("Your authorization for this person is no longer active."))
    if lookup.state not in expected:
        return LookupRefused("wrong_step", _("This step is not available now."))
    return None


# --- start --------------------------------------------------------------------------------


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
            audit = {"actor": actor, "subject": lookup.elder, "target": lookup, "clinic": lookup.elder.clinic}
            if device is None:
                refusal = LookupRefused("no_device", _("No authenticator is set up for you. Please ask the clinic."))
                audit_record(action="otp.failed", outcome="no_device", **audit)
            else:
                allowed, info = device.verify_is_allowed()
                if not allowed:
                    locked_until = (info or {}).get("locked_until")
                    refusal = LookupRefused(
                        "throttled",
                        _("Too many wrong codes. Please wait before trying again."),
                        retry_at=locked_until,
                    )
                    audit_record(action="otp.throttled", outcome="throttled", **audit)
                elif (backup := _backup_code_accepted(lookup.requester, token)) or device.verify_token(token):
                    lookup.state = State.AWAITING_FACE
                    lookup.otp_verified_at = now
                    _touch(lookup, ["state", "otp_verified_at"])
                    audit_record(action="otp.verified", outcome="backup_code" if backup else "ok", **audit)
                else:
                    replayed = _was_replayed(device, token)
                    refusal = LookupRefused(
                        "replayed" if replayed else "wrong_code",
                        _("That code was already used. Wait for the next code in your app.")
                        if replayed
                        else _("That code is not correct. Check your authenticator app and try again."),
                    )
                    audit_record(action="otp.failed", outcome="replayed" if replayed else "wrong_code", **audit)
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


def _probe_path(check_id: uuid.UUID) -> Path:
    return Path(settings.PROBE_DIR) / f"{check_id}.npz"


def _write_probe(path: Path, frames: Sequence[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    buffer = io.BytesIO()
    np.savez(buffer, *frames)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(buffer.getvalue())


def delete_probe(path: str | Path) -> None:
    if path:
        Path(path).unlink(missing_ok=True)


def lookup_submit_face(
    *, actor: Actor, lookup_id: uuid.UUID | str, images: Sequence[bytes], session_binding: str | None = None
) -> FaceCheck:
    """awaiting_face → checking_face: validate the photo(s) and queue a face check.

    The upload is decoded and normalized here (content-sniffed, size- and bomb-checked,
    EXIF-rotated, RGB, downscaled) so bad files get an immediate answer; only the
    normalized pixels are written, to a private file the worker deletes when the check
    ends. If the broker refuses the task, the lookup returns to awaiting_face and
    ``FaceCheckingUnavailable`` is raised: nothing is lost, nothing is granted.
    """
    if not images:
        raise LookupRefused("empty", _("Please take or choose a photo of your face."))
    if len(images) == 1 and not settings.KINGUARD_ALLOW_STILL_UPLOAD:
        # A single still defeats the burst's replay check: only where the deployment allows it.
        from .selectors import face_reason_message

        raise LookupRefused("still_not_allowed", face_reason_message("still_not_allowed"))
    if len(images) > 1:
        try:  # the burst's decode budget, by headers only (the form checks it too)
            capture_budget.check_capture(images)
        except capture_budget.CaptureOverBudget as exc:
            from .selectors import face_reason_message

            raise LookupRefused(exc.code, face_reason_message(exc.code)) from exc
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
        from .selectors import face_reason_message

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
                    _("Too many failed face checks. Please wait before trying again."),
                    retry_at=wait_until,
                )
            if refusal is None:
                check = FaceCheck(lookup=lookup, created_at=now)
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
                    details={"lookup": str(lookup.pk), "frames": len(frames), "attempt": lookup.face_attempts},
                )
                from .tasks import run_face_check

                run_face_check.delay_on_commit(str(check.id))
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
    return check


def face_check_not_queued(*, check_id: uuid.UUID | str) -> None:
    """checking_face → awaiting_face when the check never reached the broker."""
    with transaction.atomic():
        check = FaceCheck.objects.select_related("lookup").get(pk=check_id)
        lookup = _locked_lookup(check.lookup_id, None)
        check = FaceCheck.objects.select_for_update().get(pk=check_id)
        if check.state == FaceCheck.State.DONE:
            return
        delete_probe(check.probe_path)
        check.state = FaceCheck.State.DONE
        check.outcome = Outcome.NOT_QUEUED
        check.finished_at = _now()
        check.probe_path = ""
        check.save(update_fields=["state", "outcome", "finished_at", "probe_path"])
        if lookup.state == State.CHECKING_FACE:
            lookup.state = State.AWAITING_FACE
            lookup.face_attempts = max(0, lookup.face_attempts - 1)
            _touch(lookup, ["state", "face_attempts"])
        _audit_step(
            lookup,
            actor=Actor.system("web"),
            action="face.not_queued",
            outcome="broker_unavailable",
            target=check,
        )


def _face_threshold() -> float:
    configured = settings.KINGUARD_FACE_THRESHOLD
    return float(configured) if configured is not None else matching.DEFAULT_THRESHOLD


@dataclass
class _Computed:
    outcome: str
    reason_code: str = ""
    verdict: matching.Verdict | None = None
    total_ms: int = 0


def _compute(check: FaceCheck, person: Person) -> _Computed:
    """Run the pipeline outside any transaction. Never raises: every failure is an outcome."""
    started = time.monotonic()
    try:
        _test_hold_point()
        template = face_template_of(person)
        if template is None:
            return _Computed(Outcome.REJECTED, "not_enrolled")
        try:
            with np.load(check.probe_path) as archive:
                frames = [archive[name] for name in archive.files]
        except FileNotFoundError:
            return _Computed(Outcome.ERROR, "probe_missing")
        threshold = _face_threshold()
        if len(frames) > 1:
            verdict = burst.check_burst_arrays(frames, template, threshold=threshold)
        else:
            sample = detection.detect_single_face(frames[0])
            verdict = matching.compare(template, sample, threshold=threshold)
        outcome = Outcome.MATCH if verdict.matched else Outcome.NO_MATCH
        return _Computed(outcome, "", verdict, int((time.monotonic() - started) * 1000))
    except ProbeRejected as exc:
        return _Computed(Outcome.REJECTED, exc.code, None, int((time.monotonic() - started) * 1000))
    except SoftTimeLimitExceeded:
        # The worker's soft time limit: a clean "error" verdict instead of a lost check.
        logger.warning("face check %s hit the soft time limit", check.pk)
        return _Computed(Outcome.ERROR, "timeout", None, int((time.monotonic() - started) * 1000))
    except Exception:
        logger.exception("face check %s failed", check.pk)
        return _Computed(Outcome.ERROR, "internal_error", None, int((time.monotonic() - started) * 1000))


def face_check_run(*, check_id: uuid.UUID | str) -> str:
    """Run one face check (the Celery task's body). Idempotent: safe to redeliver.

    Phase 1 locks the check and returns at once if it is already final. The pipeline runs
    with no lock held. Phase 2 locks lookup then check again and records the verdict only if
    no other delivery did meanwhile. The probe file is deleted once the check is final.
    A check delivered more than KINGUARD_FACE_CHECK_MAX_DELIVERIES times (its worker died
    each time: a poison probe) is closed as an error without running the pipeline again.
    """
    with transaction.atomic():
        check = FaceCheck.objects.select_for_update().filter(pk=check_id).first()
        if check is None or check.state == FaceCheck.State.DONE:
            return check.outcome if check else "missing"
        check.state = FaceCheck.State.RUNNING
        check.deliveries += 1
        check.started_at = check.started_at or _now()
        check.save(update_fields=["state", "deliveries", "started_at"])
        person = check.lookup.requester_person

    if check.deliveries > settings.KINGUARD_FACE_CHECK_MAX_DELIVERIES:
        computed = _Computed(Outcome.ERROR, "too_many_deliveries")
    else:
        computed = _compute(check, person)
    return _record_verdict(check_id=check_id, computed=computed)


def face_check_abandon(*, check_id: uuid.UUID | str, reason: str) -> str:
    """Close a check that cannot finish normally (time limit, task failure) as an error.

    Same locking and effects as the end of :func:`face_check_run` (lookup, then check): the
    verdict is recorded and audited only if no delivery recorded one first, the probe file
    is deleted, and the lookup goes back to the face step (or is denied at the attempt limit).
    """
    return _record_verdict(check_id=check_id, computed=_Computed(Outcome.ERROR, reason))


def _test_hold_point() -> None:
    """Fault injection for the integration tests: wait while the hold file exists.

    Only ``config.settings.test`` defines KINGUARD_TEST_HOLD_FILE (from the environment);
    in every other settings module it is absent and this returns at once. Bounded, and
    interruptible by the worker's soft time limit.
    """
    hold_file = getattr(settings, "KINGUARD_TEST_HOLD_FILE", None)
    if not hold_file:
        return
    deadline = time.monotonic() + 120
    while Path(hold_file).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _record_verdict(*, check_id: uuid.UUID | str, computed: _Computed) -> str:
    """Phase 2 of a face check: lock lookup then check, record the outcome once."""
    actor = Actor.system("face-worker")
    lookup_id = FaceCheck.objects.filter(pk=check_id).values_list("lookup_id", flat=True).first()
    if lookup_id is None:
        return "missing"
    with transaction.atomic():
        lookup = _locked_lookup(lookup_id, None)
        check = FaceCheck.objects.select_for_update().get(pk=check_id)
        if check.state == FaceCheck.State.DONE:
            return check.outcome
        now = _now()
        check.state = FaceCheck.State.DONE
        check.finished_at = now
        check.total_ms = computed.total_ms
        if computed.verdict is not None:
            check.distance = computed.verdict.distance
            check.threshold = computed.verdict.threshold
            check.model_version = computed.verdict.model_version
            check.detect_ms = computed.verdict.detect_ms
            check.encode_ms = computed.verdict.encode_ms
        else:
            check.threshold = _face_threshold()
            check.model_version = matching.MODEL_VERSION
        probe_path, check.probe_path = check.probe_path, ""
        outcome = computed.outcome
        if lookup.state != State.CHECKING_FACE:
            outcome = Outcome.DISCARDED
        check.outcome = outcome
        check.reason_code = computed.reason_code
        check.save()
        _audit_step(
            lookup,
            actor=actor,
            action="face.verdict",
            outcome=outcome,
            target=check,
            details={
                "lookup": str(lookup.pk),
                "reason": computed.reason_code,
                "distance": round(check.distance, 4) if check.distance is not None else None,
                "threshold": check.threshold,
                "model_version": check.model_version,
            },
        )
        if outcome != Outcome.DISCARDED:
            _apply_verdict(lookup, outcome, actor, now)
        transaction.on_commit(lambda: delete_probe(probe_path))
    return outcome


def _apply_verdict(lookup: LookupRequest, outcome: str, actor: Actor, now: dt.datetime) -> None:
    user = User.objects.select_for_update().get(pk=lookup.requester_id)
    if outcome == Outcome.MATCH:
        user.face_failures = 0
        user.face_retry_not_before = None
        user.save(update_fields=["face_failures", "face_retry_not_before"])
        if not _still_allowed(lookup, now):
            _end(lookup, state=State.DENIED, reason="authorization_inactive", actor=actor, action="lookup.denied")
            return
        lookup.state = State.GRANTED
        lookup.granted_at = now
        lookup.grant_expires_at = now + dt.timedelta(minutes=settings.KINGUARD_GRANT_MINUTES)
        _touch(lookup, ["state", "granted_at", "grant_expires_at"])
        _audit_step(
            lookup,
            actor=actor,
            action="lookup.granted",
            outcome=State.GRANTED,
            details={"grant_expires_at": lookup.grant_expires_at},
        )
        return
    # Any failed check (no match, unusable photo, error) counts toward both limits.
    user.face_failures += 1
    free_failures = settings.KINGUARD_FACE_FAILURES_BEFORE_DELAY
    if user.face_failures >= free_failures:
        delay = settings.KINGUARD_FACE_DELAY_BASE_SECONDS * 2 ** min(user.face_failures - free_failures, 10)
        user.face_retry_not_before = now + dt.timedelta(seconds=delay)
    user.save(update_fields=["face_failures", "face_retry_not_before"])
    if lookup.face_attempts >= settings.KINGUARD_FACE_ATTEMPTS_PER_LOOKUP:
        _end(lookup, state=State.DENIED, reason="too_many_face_attempts", actor=actor, action="lookup.denied")
    else:
        lookup.state = State.AWAITING_FACE
        _touch(lookup, ["state"])


# --- results ------------------------------------------------------------------------------

RESULT_FIELDS = ("id", "kind", "sampled_at", "site", "lab", "result", "reported_at")


def results_view(*, actor: Actor, lookup_id: uuid.UUID | str, session_binding: str | None = None) -> ResultsView:
    """Return the elder's results under a live grant, and audit the view.

    Re-checks expiry and the authorization on every call: a revoked authorization or an
    ended grant hides the results at once. The sampling photo is never loaded.
    """
    now = _now()
    with transaction.atomic():
        lookup = _locked_lookup(lookup_id, actor.user, session_binding)
        refusal = _guard(lookup, actor, now, {State.GRANTED})
        if refusal is None:
            results = list(TestResult.objects.filter(elder=lookup.elder).only(*RESULT_FIELDS).order_by("-sampled_at"))
            _audit_step(
                lookup,
                actor=actor,
                action="results.viewed",
                outcome="shown",
                details={"results": [r.pk for r in results], "self": lookup.is_self_lookup},
            )
            notice_results_viewed(actor=actor, lookup=lookup)  # first view per lookup only
    if refusal is not None:
        raise refusal
    return ResultsView(lookup=lookup, results=results)


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


def sweep_stale(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Expire lookups and face checks stuck beyond their limits (run by Celery beat).

    A check still queued or running after KINGUARD_FACE_CHECK_STALE_SECONDS is closed as
    expired and its probe deleted, and its lookup goes back to the face step (or expires),
    so nothing waits forever.
    """
    now = now or _now()
    actor = Actor.system("sweeper")
    counts = {"checks": 0, "lookups": 0}
    stale_before = now - dt.timedelta(seconds=settings.KINGUARD_FACE_CHECK_STALE_SECONDS)
    stale_checks = FaceCheck.objects.exclude(state=FaceCheck.State.DONE).filter(created_at__lt=stale_before)
    for check_id, lookup_id in stale_checks.values_list("id", "lookup_id"):
        with transaction.atomic():
            lookup = _locked_lookup(lookup_id, None)
            check = FaceCheck.objects.select_for_update().get(pk=check_id)
            if check.state == FaceCheck.State.DONE:
                continue
            delete_probe(check.probe_path)
            check.state, check.outcome, check.probe_path, check.finished_at = (
                FaceCheck.State.DONE,
                Outcome.EXPIRED,
                "",
                now,
            )
            check.save(update_fields=["state", "outcome", "probe_path", "finished_at"])
            _audit_step(
                lookup,
                actor=actor,
                action="face.expired",
                outcome="expired",
                target=check,
            )
            if lookup.state == State.CHECKING_FACE:
                lookup.state = State.AWAITING_FACE
                _touch(lookup, ["state"])
            counts["checks"] += 1
    lookup_deadline = now - dt.timedelta(minutes=settings.KINGUARD_LOOKUP_TTL_MINUTES)
    open_ids = LookupRequest.objects.filter(
        state__in=[State.AWAITING_OTP, State.AWAITING_FACE, State.CHECKING_FACE], created_at__lt=lookup_deadline
    ).values_list("id", flat=True)
    granted_ids = LookupRequest.objects.filter(state=State.GRANTED, grant_expires_at__lte=now).values_list(
        "id", flat=True
    )
    for lookup_id in [*open_ids, *granted_ids]:
        with transaction.atomic():
            lookup = _locked_lookup(lookup_id, None)
            if _expire_if_due(lookup, actor, now):
                counts["lookups"] += 1
    counts["probes"] = _sweep_orphan_probes(stale_before)
    return counts


def _sweep_orphan_probes(older_than: dt.datetime) -> int:
    """Delete probe files that no open check refers to, once older than the stale limit.

    Normally a probe is deleted when its check ends; this catches the rest (a worker killed
    between committing the verdict and deleting the file, a web process killed between
    writing the file and committing). Files younger than the limit are left alone: their
    check's transaction may still be open. No lock needed: only ended checks' files go.
    """
    root = Path(settings.PROBE_DIR)
    if not root.is_dir():
        return 0
    open_ids = {
        str(check_id) for check_id in FaceCheck.objects.exclude(state=FaceCheck.State.DONE).values_list("id", flat=True)
    }
    cutoff = older_than.timestamp()
    removed = 0
    for path in root.glob("*.npz"):
        try:
            if path.stem in open_ids or path.stat().st_mtime >= cutoff:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


# --- results recorded by staff ------------------------------------------------------------


def result_record(
    *,
    actor: Actor,
    elder: Person,
    kind: str,
    sampled_at: dt.datetime,
    site: str,
    lab: str,
    result: str,
    reported_at: dt.datetime,
    sampling_photo=None,
) -> TestResult:
    """Record one test result for an elder of the actor's clinic, audited."""
    roles = permissions.ACTION_ROLES[permissions.StaffAction.RECORD_RESULTS]
    if actor.user is None or not permissions.is_staff_of(actor.user, elder.clinic_id, roles):
        raise LookupRefused("not_staff", _("You are not staff of this person's clinic."))
    if reported_at < sampled_at:
        raise LookupRefused("bad_dates", _("A result cannot be reported before the sample was taken."))
    return result_save(
        actor=actor,
        elder=elder,
        kind=kind,
        sampled_at=sampled_at,
        site=site,
        lab=lab,
        result=result,
        reported_at=reported_at,
        sampling_photo=sampling_photo,
        source="staff",
    )


def result_save(
    *,
    actor: Actor,
    elder: Person,
    kind: str,
    sampled_at: dt.datetime,
    site: str,
    lab: str,
    result: str,
    reported_at: dt.datetime,
    sampling_photo=None,
    source: str = "staff",
) -> TestResult:
    """Write one result and its ``result.recorded`` event in one transaction.

    No permission check: callers decide who may record (``result_record`` checks staff, the
    FHIR endpoint checks the sender's clinics) and validate the dates.
    """
    with transaction.atomic():
        record = TestResult(
            clinic=elder.clinic,
            elder=elder,
            kind=kind,
            sampled_at=sampled_at,
            site=site,
            lab=lab,
            result=result,
            reported_at=reported_at,
            recorded_by=actor.user,
        )
        if sampling_photo:
            record.sampling_photo = sampling_photo
        record.save()
        audit_record(
            actor=actor,
            action="result.recorded",
            outcome="ok",
            subject=elder,
            target=record,
            clinic=elder.clinic,
            details={"kind": kind, "with_photo": bool(sampling_photo)}
            | ({} if source == "staff" else {"source": source}),
        )
    return record


# --- results imported from a lab export (staff workspace) -----------------------------------

RESULTS_CSV_MAX_BYTES = 2 * 1024 * 1024
RESULTS_CSV_MAX_ROWS = 5000
RESULTS_CSV_COLUMNS = ("id_number", "test_kind", "sampled_at", "site", "lab", "result", "reported_at")
_RESULTS_CSV_ALIASES = {"kind": "test_kind", "id": "id_number", "id_no": "id_number"}
_CLOCK_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class ImportRowError:
    line: int
    message: str


class ResultsImportRejected(Exception):
    """Nothing was imported. ``str()`` says why; ``errors`` lists row problems by line number."""

    def __init__(self, message: str, errors: Sequence[ImportRowError] = ()):
        super().__init__(message)
        self.errors = list(errors)


@dataclass
class _ImportRow:
    line: int
    id_hash: str = ""
    kind: str = ""
    sampled_at: dt.datetime | None = None
    reported_at: dt.datetime | None = None
    site: str = ""
    lab: str = ""
    result: str = ""


def _csv_key(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", (name or "").strip().lower())
    return _RESULTS_CSV_ALIASES.get(key, key)


def _csv_datetime(value: str) -> dt.datetime | None:
    """``2026-01-05 09:30``, ``2026-01-05T09:30:00+08:00`` or ``2026/01/05 09:30``; naive → TIME_ZONE."""
    from django.utils.dateparse import parse_datetime

    value = value.strip().replace("/", "-")
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def _csv_kind(value: str) -> str | None:
    wanted = value.strip().lower()
    for code, label in TestResult.Kind.choices:
        if wanted in (code, str(label).lower()):
            return code
    return None


def _csv_decode(data: bytes) -> str:
    if not data or not data.strip():
        raise ResultsImportRejected(_("The file is empty."))
    if len(data) > RESULTS_CSV_MAX_BYTES:
        raise ResultsImportRejected(
            _("The file is larger than %(mb)d MB. Please split it into smaller files.")
            % {"mb": RESULTS_CSV_MAX_BYTES // (1024 * 1024)}
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ResultsImportRejected(
            _('The file is not UTF-8 text (a problem near byte %(pos)d). Save it as "CSV UTF-8" and try again.')
            % {"pos": exc.start + 1}
        ) from exc
    if "\x00" in text:
        raise ResultsImportRejected(_("This is not a CSV text file. Please export the results as CSV."))
    return text


def _csv_check_header(header: list[str]) -> dict[str, int]:
    keys = [_csv_key(name) for name in header]
    expected = ", ".join(RESULTS_CSV_COLUMNS)
    if len(keys) == 1 and any(sep in header[0] for sep in (";", "\t")):
        raise ResultsImportRejected(_("Columns must be separated by commas. Expected header: %s") % expected)
    missing = [c for c in RESULTS_CSV_COLUMNS if c not in keys]
    unknown = [h for h, k in zip(header, keys, strict=True) if k not in RESULTS_CSV_COLUMNS]
    repeated = sorted({k for k in keys if k in RESULTS_CSV_COLUMNS and keys.count(k) > 1})
    problems = []
    if missing:
        problems.append(_("missing columns: %s") % ", ".join(missing))
    if unknown:
        problems.append(_("unknown columns: %s") % ", ".join(unknown))
    if repeated:
        problems.append(_("repeated columns: %s") % ", ".join(repeated))
    if problems:
        raise ResultsImportRejected(
            _("The first line must be the header (%(problems)s). Expected header: %(expected)s")
            % {"problems": "; ".join(problems), "expected": expected}
        )
    return {key: index for index, key in enumerate(keys)}


def _csv_parse_row(line: int, cells: list[str], columns: dict[str, int], now: dt.datetime) -> tuple[_ImportRow, list]:
    from guardians import crypto, id_numbers

    row = _ImportRow(line=line)
    problems: list[str] = []
    value = {key: cells[index].strip() for key, index in columns.items()}
    try:
        number, _birth = id_numbers.validate(value["id_number"])
        row.id_hash = crypto.keyed_hash(number)
    except id_numbers.InvalidIdNumber as exc:
        problems.append(_("ID number: %s") % exc)
    row.kind = _csv_kind(value["test_kind"]) or ""
    if not row.kind:
        problems.append(
            _("unknown test kind %(kind)r (use one of: %(kinds)s)")
            % {"kind": value["test_kind"], "kinds": ", ".join(TestResult.Kind.values)}
        )
    for field in ("sampled_at", "reported_at"):
        parsed = _csv_datetime(value[field])
        if parsed is None:
            problems.append(
                _("%(field)s %(value)r is not a date and time like 2026-01-05 09:30")
                % {"field": field, "value": value[field]}
            )
        elif parsed > now + _CLOCK_SKEW:
            problems.append(_("%(field)s is in the future") % {"field": field})
        setattr(row, field, parsed)
    if row.sampled_at and row.reported_at and row.reported_at < row.sampled_at:
        problems.append(_("reported_at is before sampled_at"))
    for field in ("site", "lab", "result"):
        if not value[field]:
            problems.append(_("%s is empty") % field)
        elif len(value[field]) > 200:
            problems.append(_("%s is longer than 200 characters") % field)
        setattr(row, field, value[field])
    return row, problems


def results_import_csv(*, actor: Actor, clinic, data: bytes) -> list[TestResult]:
    """Import a lab export (CSV, UTF-8, header + one result per line) for ``clinic``: all rows or none.

    Every row is validated first (ID number checksum, elder registered at *this* clinic —
    matched by the keyed hash of the ID number, never revealing other clinics' people —,
    known test kind, dates, required text, no repeat of a row or of a recorded result) and
    every problem is reported with its line number in ``ResultsImportRejected.errors``. Only
    a file without problems is written, in one transaction: the results with one bulk insert
    (the clinic check of ``result_record`` was done for the whole file above), then one
    ``result.recorded`` event per row and one ``results.imported`` event through
    ``audit_record_many`` (one head lock, one bulk insert).
    """
    rows, elders = results_import_check(actor=actor, clinic=clinic, data=data)
    return _results_import_write(actor=actor, clinic=clinic, rows=rows, elders=elders)


def results_import_check(*, actor: Actor, clinic, data: bytes) -> tuple[list[_ImportRow], dict[str, Person]]:
    """Every check of :func:`results_import_csv`, nothing written: the valid rows and the
    clinic's elders by ID hash, or :class:`ResultsImportRejected` listing every problem."""
    import csv

    roles = permissions.ACTION_ROLES[permissions.StaffAction.RECORD_RESULTS]
    if actor.user is None or not permissions.is_staff_of(actor.user, clinic, roles):
        raise ResultsImportRejected(_("You may not record results for this clinic."))
    text = _csv_decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    now = _now()
    errors: list[ImportRowError] = []
    rows: list[_ImportRow] = []
    columns: dict[str, int] | None = None
    data_rows = 0
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if columns is None:
                columns = _csv_check_header(cells)
                continue
            data_rows += 1
            if data_rows > RESULTS_CSV_MAX_ROWS:
                raise ResultsImportRejected(
                    _("The file has more than %(max)d rows. Please split it into smaller files.")
                    % {"max": RESULTS_CSV_MAX_ROWS}
                )
            if len(cells) != len(columns):
                errors.append(
                    ImportRowError(line, _("has %(n)d fields, expected %(m)d") % {"n": len(cells), "m": len(columns)})
                )
                continue
            row, problems = _csv_parse_row(line, cells, columns, now)
            errors.extend(ImportRowError(line, problem) for problem in problems)
            rows.append(row)
    except csv.Error as exc:
        raise ResultsImportRejected(
            _("The file is not valid CSV near line %(line)d (%(error)s).") % {"line": reader.line_num, "error": exc}
        ) from exc
    if columns is None or data_rows == 0:
        raise ResultsImportRejected(_("The file has no result rows, only a header (or nothing)."))

    elders = {
        p.id_number_hash: p
        for p in Person.objects.filter(
            clinic=clinic, is_elder=True, id_number_hash__in={r.id_hash for r in rows if r.id_hash}
        ).select_related("clinic")
    }
    recorded = set(
        TestResult.objects.filter(
            elder__in=list(elders.values()), sampled_at__in={r.sampled_at for r in rows if r.sampled_at}
        ).values_list("elder_id", "kind", "sampled_at")
    )
    seen: dict[tuple, int] = {}
    for row in rows:
        if not row.id_hash:
            continue
        elder = elders.get(row.id_hash)
        if elder is None:
            errors.append(ImportRowError(row.line, _("no elder with this ID number is registered at this clinic")))
            continue
        if not (row.kind and row.sampled_at):
            continue
        key = (elder.pk, row.kind, row.sampled_at)
        if key in seen:
            errors.append(
                ImportRowError(row.line, _("repeats line %d (same person, test kind and sampling time)") % seen[key])
            )
        elif key in recorded:
            errors.append(
                ImportRowError(
                    row.line, _("this result is already recorded (same person, test kind and sampling time)")
                )
            )
        seen.setdefault(key, row.line)
    if errors:
        errors.sort(key=lambda e: e.line)
        lines = len({e.line for e in errors})
        raise ResultsImportRejected(
            _(
                "Nothing was imported: %(lines)d of %(rows)d rows have problems. "
                "Correct them and import the whole file again."
            )
            % {"lines": lines, "rows": data_rows},
            errors,
        )
    return rows, elders


def _results_import_write(
    *, actor: Actor, clinic, rows: list[_ImportRow], elders: dict[str, Person]
) -> list[TestResult]:
    with transaction.atomic():
        created = TestResult.objects.bulk_create(
            [
                TestResult(
                    clinic=clinic,
                    elder=elders[row.id_hash],
                    kind=row.kind,
                    sampled_at=row.sampled_at,
                    site=row.site,
                    lab=row.lab,
                    result=row.result,
                    reported_at=row.reported_at,
                    recorded_by=actor.user,
                )
                for row in rows
            ],
            batch_size=2000,
        )
        # The same events result_record writes, one per row, then the summary: appended last,
        # in one batch, so the global chain head is locked only for the audit insert + commit.
        entries = [
            AuditEntry(
                action="result.recorded",
                outcome="ok",
                subject=record.elder,
                target=record,
                clinic=clinic,
                details={"kind": record.kind, "with_photo": False},
            )
            for record in created
        ]
        entries.append(
            AuditEntry(
                action="results.imported",
                outcome="ok",
                clinic=clinic,
                details={"rows": len(created), "results": [r.pk for r in created]},
            )
        )
        audit_record_many(actor, entries)
    return created


def result_sampling_photo_open(*, actor: Actor, result_id: int, reason: str):
    """Open a result's sampling photo for a staff member who typed a reason; audited.

    Only for staff allowed to view sampling photos at the result's clinic; anything else
    (other clinic, no photo, missing file) raises LookupNotFound. The reason is kept in the
    ``result.sampling_photo_viewed`` event. Returns (open file, content type).
    """
    import mimetypes

    reason = " ".join((reason or "").split())
    user = actor.user
    if user is None:
        raise LookupNotFound
    result = (
        permissions.staff_results(user, permissions.StaffAction.VIEW_SAMPLING_PHOTO)
        .select_related("elder", "clinic")
        .filter(pk=result_id)
        .first()
    )
    if result is None or not result.sampling_photo:
        raise LookupNotFound
    if len(reason) < 5:
        raise LookupRefused("reason_required", _("Type why you need to see this photo (at least a few words)."))
    try:
        handle = result.sampling_photo.open("rb")
    except FileNotFoundError as exc:
        raise LookupNotFound from exc
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="result.sampling_photo_viewed",
            outcome="shown",
            subject=result.elder,
            target=result,
            clinic=result.clinic,
            details={"reason": reason[:300]},
        )
    content_type = mimetypes.guess_type(result.sampling_photo.name)[0] or "application/octet-stream"
    return handle, content_type
