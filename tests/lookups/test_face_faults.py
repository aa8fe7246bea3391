"""Fault handling of the face task and services, without a worker process (the integration
tests in tests/integration run the same paths in real workers)."""

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings as django_settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError
from django.utils import timezone
from kombu import Connection

from config.celery import app
from lookups import services, tasks
from lookups.audit import Actor
from lookups.faces import detection
from lookups.models import AuditEvent, FaceCheck, LookupRequest
from lookups.services import face_checks
from tests.helpers import face_bytes, pass_otp, start_lookup

State = LookupRequest.State
Outcome = FaceCheck.Outcome
face_task = app.tasks["lookups.tasks.run_face_check"]


# --- configuration ------------------------------------------------------------------------


def test_face_checks_are_routed_to_the_face_queue_and_the_rest_to_default():
    assert app.amqp.router.route({}, "lookups.tasks.run_face_check")["queue"].name == "face"
    assert app.amqp.router.route({}, "lookups.tasks.sweep_stale")["queue"].name == "default"


def test_a_published_face_check_lands_on_the_face_queue():
    with Connection("memory://") as conn:
        face_queue = conn.SimpleQueue("face")
        default_queue = conn.SimpleQueue("default")
        face_queue.clear()
        default_queue.clear()
        tasks.run_face_check.apply_async(args=["00000000-0000-0000-0000-000000000000"], connection=conn)
        message = face_queue.get(timeout=2)
        assert message.headers["task"] == "lookups.tasks.run_face_check"
        assert message.headers["timelimit"] == [
            django_settings.KINGUARD_FACE_HARD_TIME_LIMIT,
            django_settings.KINGUARD_FACE_SOFT_TIME_LIMIT,
        ]
        message.ack()
        assert default_queue.qsize() == 0
        face_queue.close()
        default_queue.close()


def test_face_task_is_late_acked_and_requeued_when_its_worker_dies():
    assert face_task.acks_late and face_task.reject_on_worker_lost
    # A failure or a hard time limit is acknowledged (on_failure closes the check):
    # redelivering it would only repeat the failure.
    assert face_task.acks_on_failure and face_task.acks_on_timeout
    assert 0 < face_task.soft_time_limit < face_task.time_limit
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is True


def test_only_transient_database_errors_are_retried_with_backoff():
    retried = face_task.autoretry_for
    assert issubclass(OperationalError, retried) and issubclass(InterfaceError, retried)
    assert not issubclass(IntegrityError, retried) and not issubclass(DatabaseError, retried)
    assert face_task.retry_backoff and face_task.retry_backoff_max == 30 and face_task.max_retries == 5


def test_redis_visibility_timeout_fits_between_the_hard_limit_and_the_sweeper(monkeypatch):
    from config.settings.base import redis_transport_options

    monkeypatch.delenv("CELERY_VISIBILITY_TIMEOUT", raising=False)
    monkeypatch.delenv("CELERY_UNACKED_RESTORE_INTERVAL", raising=False)
    options = redis_transport_options()
    assert options["visibility_timeout"] > django_settings.KINGUARD_FACE_HARD_TIME_LIMIT
    restored_within = options["visibility_timeout"] + options["unacked_restore_interval"]
    assert restored_within < django_settings.KINGUARD_FACE_CHECK_STALE_SECONDS
    assert options["socket_connect_timeout"] <= 5 and options["socket_timeout"] <= 5


def test_sweeper_runs_every_minute_on_the_default_queue():
    entry = django_settings.CELERY_BEAT_SCHEDULE["sweep-stale-lookups"]
    assert entry["task"] == "lookups.tasks.sweep_stale"
    assert entry["schedule"] <= dt.timedelta(minutes=1)


# --- services -----------------------------------------------------------------------------


@pytest.fixture
def queued_check(guardian_client, authorization, guardian_device, enrolled_guardian, results):
    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    return services.lookup_submit_face(
        actor=Actor.for_user(lookup.requester),
        lookup_id=lookup.pk,
        session_binding=lookup.session_binding,
        images=[face_bytes("person_01/04.jpg")],
    )


@pytest.mark.django_db
def test_soft_time_limit_inside_the_pipeline_is_an_error_verdict(
    queued_check, monkeypatch, django_capture_on_commit_callbacks
):
    def too_slow(*_args, **_kwargs):
        raise SoftTimeLimitExceeded

    # looked up in lookups.faces.detection by the worker (services calls detection.detect_single_face)
    monkeypatch.setattr(detection, "detect_single_face", too_slow)
    probe = Path(queued_check.probe_path)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.face_check_run(check_id=queued_check.pk) == Outcome.ERROR
    queued_check.refresh_from_db()
    assert (queued_check.outcome, queued_check.reason_code) == (Outcome.ERROR, "timeout")
    assert queued_check.lookup.state == State.AWAITING_FACE
    assert not probe.exists()


@pytest.mark.django_db
def test_a_check_delivered_too_often_is_closed_without_running_again(
    queued_check, monkeypatch, django_capture_on_commit_callbacks, settings
):
    settings.KINGUARD_FACE_CHECK_MAX_DELIVERIES = 3
    FaceCheck.objects.filter(pk=queued_check.pk).update(state=FaceCheck.State.RUNNING, deliveries=3)

    def must_not_run(*_args):
        raise AssertionError("a poison probe was run a fourth time")

    monkeypatch.setattr(face_checks, "_compute", must_not_run)
    with django_capture_on_commit_callbacks(execute=True):
        services.face_check_run(check_id=queued_check.pk)
    queued_check.refresh_from_db()
    assert (queued_check.outcome, queued_check.reason_code, queued_check.deliveries) == (
        Outcome.ERROR,
        "too_many_deliveries",
        4,
    )
    assert not Path(queued_check.probe_path or "/nonexistent").exists()
    assert list(settings.PROBE_DIR.iterdir()) == []


@pytest.mark.django_db
def test_abandon_closes_once_and_deletes_the_probe(queued_check, django_capture_on_commit_callbacks, settings):
    with django_capture_on_commit_callbacks(execute=True):
        assert services.face_check_abandon(check_id=queued_check.pk, reason="timeout") == Outcome.ERROR
        # A late delivery, or a second abandon, changes nothing.
        assert services.face_check_run(check_id=queued_check.pk) == Outcome.ERROR
        assert services.face_check_abandon(check_id=queued_check.pk, reason="task_failed") == Outcome.ERROR
    queued_check.refresh_from_db()
    assert (queued_check.reason_code, queued_check.deliveries) == ("timeout", 0)
    assert AuditEvent.objects.filter(action="face.verdict", target_id=str(queued_check.pk)).count() == 1
    assert list(settings.PROBE_DIR.iterdir()) == []
    assert services.face_check_abandon(check_id="3f1c8f0e-0000-4000-8000-000000000000", reason="x") == "missing"


@pytest.mark.django_db
def test_task_retries_transient_database_errors(queued_check, monkeypatch):
    calls = []
    real_run = services.face_check_run

    def flaky(*, check_id):
        calls.append(check_id)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return real_run(check_id=check_id)

    monkeypatch.setattr(face_checks, "face_check_run", flaky)
    result = tasks.run_face_check.apply(args=[str(queued_check.pk)])
    assert result.get() == Outcome.MATCH
    assert len(calls) == 3


@pytest.mark.django_db
def test_task_does_not_retry_other_errors_and_closes_the_check(
    queued_check, monkeypatch, django_capture_on_commit_callbacks, settings
):
    calls = []

    def broken(*, check_id):
        calls.append(check_id)
        raise IntegrityError("a bug, not a blip")

    monkeypatch.setattr(face_checks, "face_check_run", broken)
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.run_face_check.apply(args=[str(queued_check.pk)])
    assert result.failed() and len(calls) == 1
    queued_check.refresh_from_db()
    assert (queued_check.outcome, queued_check.reason_code) == (Outcome.ERROR, "task_failed")
    assert queued_check.lookup.state == State.AWAITING_FACE
    assert list(settings.PROBE_DIR.iterdir()) == []


@pytest.mark.django_db
def test_sweeper_deletes_orphan_probe_files_but_not_live_or_fresh_ones(queued_check, settings):
    probe_dir = Path(settings.PROBE_DIR)
    live = Path(queued_check.probe_path)
    orphan = probe_dir / "11111111-1111-4111-8111-111111111111.npz"
    fresh = probe_dir / "22222222-2222-4222-8222-222222222222.npz"
    orphan.write_bytes(b"left by a killed worker")
    fresh.write_bytes(b"being written by a web request")
    old = time.time() - settings.KINGUARD_FACE_CHECK_STALE_SECONDS - 60
    os.utime(orphan, (old, old))
    os.utime(live, (old, old))

    counts = services.sweep_stale(now=timezone.now())
    assert counts["probes"] == 1
    assert not orphan.exists() and fresh.exists() and live.exists()
