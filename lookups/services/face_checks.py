"""Face checks: the worker's run (two phases, no lock held while the pipeline runs), the
verdict and its effect on the lookup, and the undo when the broker refused the task.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from guardians.models import Person, User
from guardians.services import face_cohort_of, face_template_of

from ..audit import Actor
from ..faces import burst, detection, liveness, matching
from ..faces.errors import ProbeRejected
from ..models import FaceCheck, LookupRequest
from .common import (
    Outcome,
    State,
    _audit_step,
    _end,
    _locked_lookup,
    _now,
    _still_allowed,
    _touch,
)
from .probes import delete_probe

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


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


def _decide_capture(
    check: FaceCheck,
    frames: list[np.ndarray],
    template: np.ndarray,
    threshold: float,
    started: float,
    cohort: np.ndarray | None = None,
) -> _Computed:
    """A prompted-liveness capture: one decision by ``faces.check_capture`` (issue 11).

    Accepted: a match. ``no_match``: a non-match. Every liveness code (``flat_surface``,
    ``challenge_not_done``, ...) or photo code: refused, counted as an attempt like a no-match.
    """
    decision = liveness.check_capture(
        frames, challenge=tuple(check.challenge.split(",")), template=template, threshold=threshold, cohort=cohort
    )
    elapsed = int((time.monotonic() - started) * 1000)
    verdict = None
    if decision.distance is not None:
        verdict = matching.Verdict(
            matched=decision.accepted,
            distance=float(decision.distance),
            threshold=decision.threshold,
            model_version=decision.model_version,
            detect_ms=0,
            encode_ms=0,
        )
    if decision.accepted:
        return _Computed(Outcome.MATCH, "", verdict, elapsed)
    if decision.code == "no_match":
        return _Computed(Outcome.NO_MATCH, "", verdict, elapsed)
    return _Computed(Outcome.REJECTED, decision.code or "unusable", verdict, elapsed)


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
        cohort = face_cohort_of(person)  # the other enrolled templates: look-alikes refused
        if check.challenge:
            return _decide_capture(check, frames, template, threshold, started, cohort)
        if len(frames) > 1:
            verdict = burst.check_burst_arrays(frames, template, threshold=threshold)
        else:
            sample = detection.detect_single_face(frames[0])
            verdict = matching.compare(template, sample, threshold=threshold, cohort=cohort)
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
