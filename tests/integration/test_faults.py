"""Face checks under faults, with real worker processes, Redis and PostgreSQL.

A worker killed mid-check (its pool process, or the whole worker), the soft and the hard
time limit, a stuck check left to the sweeper, Redis down when the photo is submitted.
In every case: the check ends (or is retried) cleanly, nothing is granted by mistake, and
no probe image is left on disk.

Mid-check is made deterministic with the test-only hold file (KINGUARD_TEST_HOLD_FILE,
defined only in config.settings.test): while it exists, a check waits in its compute phase.
"""

import time

import pytest
from django.urls import reverse

from lookups.models import AuditEvent, FaceCheck, LookupRequest
from lookups.tasks import sweep_stale
from tests.helpers import face_bytes, submit_face
from tests.integration.workers import assert_no_probe_files, wait_for, web_broker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
State = LookupRequest.State
Outcome = FaceCheck.Outcome
MATCHING_PHOTO = "person_01/04.jpg"


def the_check(lookup) -> FaceCheck:
    return lookup.face_checks.order_by("-created_at").first()


def wait_running(lookup, worker, deliveries: int = 1) -> FaceCheck:
    """Wait until a worker has taken the check (phase 1 committed) and is holding in compute."""
    return wait_for(
        lambda: (c := the_check(lookup)) and c.state == FaceCheck.State.RUNNING and c.deliveries == deliveries and c,
        timeout=60,
        what=f"delivery {deliveries} of the face check to start",
        worker=worker,
    )


def wait_done(lookup, worker, timeout: float = 90) -> FaceCheck:
    check = wait_for(
        lambda: (c := the_check(lookup)) and c.state == FaceCheck.State.DONE and c,
        timeout=timeout,
        what="the face check to end",
        worker=worker,
    )
    lookup.refresh_from_db()
    return check


def face_time_limits(monkeypatch, *, soft: int, hard: int) -> dict[str, str]:
    """Set the face task's time limits on both sides; returns the worker's environment.

    Celery puts the task's limits into each message when it is published, so the web
    process's values are the ones the worker applies (the worker's own only fill gaps).
    """
    from config.celery import app

    task = app.tasks["lookups.tasks.run_face_check"]
    monkeypatch.setattr(task, "soft_time_limit", soft)
    monkeypatch.setattr(task, "time_limit", hard)
    monkeypatch.setattr(task, "_exec_options", None)
    return {"KINGUARD_FACE_SOFT_TIME_LIMIT": str(soft), "KINGUARD_FACE_HARD_TIME_LIMIT": str(hard)}


def verdicts(check) -> int:
    return AuditEvent.objects.filter(action="face.verdict", target_id=str(check.pk)).count()


def test_pool_process_killed_mid_check_is_redelivered_and_finishes(
    start_worker, redis_web, hold_file, guardian_client, at_face_step, probe_dir
):
    hold_file.touch()
    worker = start_worker(KINGUARD_TEST_HOLD_FILE=str(hold_file))
    submit_face(guardian_client, at_face_step, face_bytes(MATCHING_PHOTO))
    check = wait_running(at_face_step, worker)
    assert (probe_dir / f"{check.pk}.npz").is_file()

    worker.kill_child()  # SIGKILL, as the OOM killer would
    hold_file.unlink()
    check = wait_done(at_face_step, worker)

    # reject_on_worker_lost requeued the message; the new pool process ran it again.
    assert "WorkerLostError" in worker.log_text()
    assert (check.outcome, check.deliveries) == (Outcome.MATCH, 2)
    assert verdicts(check) == 1
    assert at_face_step.state == State.GRANTED
    assert guardian_client.get(reverse("lookups:results", args=[at_face_step.pk])).status_code == 200
    assert_no_probe_files(probe_dir)


def test_whole_worker_killed_mid_check_is_redelivered_to_a_new_worker(
    start_worker, redis_web, hold_file, guardian_client, at_face_step, probe_dir
):
    hold_file.touch()
    first = start_worker(KINGUARD_TEST_HOLD_FILE=str(hold_file))
    submit_face(guardian_client, at_face_step, face_bytes(MATCHING_PHOTO))
    wait_running(at_face_step, first)

    first.kill()  # main process and pool: nobody is left to requeue the message
    hold_file.unlink()
    assert the_check(at_face_step).state == FaceCheck.State.RUNNING
    # The message is still unacknowledged in Redis; a worker puts it back on its queue
    # once it has been unacked for the visibility timeout (60 s in production, 3 s here).
    second = start_worker(CELERY_VISIBILITY_TIMEOUT="3", CELERY_UNACKED_RESTORE_INTERVAL="1")
    check = wait_done(at_face_step, second)

    assert (check.outcome, check.deliveries) == (Outcome.MATCH, 2)
    assert verdicts(check) == 1
    assert at_face_step.state == State.GRANTED
    assert_no_probe_files(probe_dir)


def test_soft_time_limit_ends_the_check_with_a_clean_error(
    start_worker, redis_web, hold_file, guardian_client, at_face_step, probe_dir, monkeypatch
):
    hold_file.touch()  # never released: the check runs into its soft limit
    limits = face_time_limits(monkeypatch, soft=2, hard=20)
    worker = start_worker(KINGUARD_TEST_HOLD_FILE=str(hold_file), **limits)
    submit_face(guardian_client, at_face_step, face_bytes(MATCHING_PHOTO))
    check = wait_done(at_face_step, worker)

    assert (check.outcome, check.reason_code, check.deliveries) == (Outcome.ERROR, "timeout", 1)
    assert "Soft time limit (2s) exceeded" in worker.log_text()
    assert verdicts(check) == 1
    assert at_face_step.state == State.AWAITING_FACE  # the guardian may try again
    page = guardian_client.get(reverse("lookups:face", args=[at_face_step.pk])).content.decode()
    assert "could not be completed" in page
    assert_no_probe_files(probe_dir)


def test_hard_time_limit_ends_the_check_with_a_clean_error(
    start_worker, redis_web, hold_file, guardian_client, at_face_step, probe_dir, monkeypatch
):
    hold_file.touch()
    # No soft limit: the pool process is killed at the hard limit, and the task's
    # on_failure (run by the worker's main process) closes the check.
    limits = face_time_limits(monkeypatch, soft=0, hard=2)
    worker = start_worker(KINGUARD_TEST_HOLD_FILE=str(hold_file), **limits)
    submit_face(guardian_client, at_face_step, face_bytes(MATCHING_PHOTO))
    check = wait_done(at_face_step, worker)

    assert "Hard time limit" in worker.log_text()
    assert (check.outcome, check.reason_code, check.deliveries) == (Outcome.ERROR, "timeout", 1)
    assert at_face_step.state == State.AWAITING_FACE
    time.sleep(1.5)  # acks_on_timeout: the message is acknowledged, not delivered again
    check.refresh_from_db()
    assert check.deliveries == 1 and verdicts(check) == 1
    assert_no_probe_files(probe_dir)


def test_sweeper_expires_a_check_stuck_on_a_dead_worker(
    start_worker, redis_web, hold_file, guardian_client, at_face_step, probe_dir
):
    hold_file.touch()
    face_worker = start_worker(queues="face", KINGUARD_TEST_HOLD_FILE=str(hold_file))
    submit_face(guardian_client, at_face_step, face_bytes(MATCHING_PHOTO))
    check = wait_running(at_face_step, face_worker)
    face_worker.kill()  # the check is stuck "running", its probe still on disk
    assert (probe_dir / f"{check.pk}.npz").is_file()

    # Celery beat sends sweep_stale to the default queue; a default-queue worker runs it.
    # Limits shrunk so that this check and its lookup are already beyond them.
    sweeper = start_worker(queues="default", KINGUARD_FACE_CHECK_STALE_SECONDS="1", KINGUARD_LOOKUP_TTL_MINUTES="0")
    sweep_stale.delay()
    check = wait_done(at_face_step, sweeper, timeout=30)
    wait_for(
        lambda: LookupRequest.objects.get(pk=at_face_step.pk).state == State.EXPIRED,
        timeout=30,
        what="the sweeper to expire the lookup",
        worker=sweeper,
    )

    assert check.outcome == Outcome.EXPIRED and check.probe_path == ""
    expired = AuditEvent.objects.get(action="face.expired", target_id=str(check.pk))
    assert expired.actor_label == "system:sweeper"
    assert AuditEvent.objects.filter(action="lookup.expired", target_id=str(at_face_step.pk)).count() == 1
    assert verdicts(check) == 0
    assert not LookupRequest.objects.filter(pk=at_face_step.pk, granted_at__isnull=False).exists()
    page = guardian_client.get(reverse("lookups:ended", args=[at_face_step.pk])).content.decode()
    assert "not finished in time" in page
    assert_no_probe_files(probe_dir)


def test_redis_down_at_submit_fails_fast_loses_nothing_and_recovers(
    start_worker, throwaway_redis, settings, guardian_client, at_face_step, probe_dir
):
    worker = start_worker(broker_url=throwaway_redis.url)
    with web_broker(settings, throwaway_redis.url):
        throwaway_redis.stop()

        started = time.monotonic()
        response = submit_face(guardian_client, at_face_step, face_bytes(MATCHING_PHOTO))
        elapsed = time.monotonic() - started
        # Not a speed target: proof that the publish gives up (connect timeout + retry
        # policy, ~1-2 s) instead of hanging the guardian's request.
        assert elapsed < 20, f"publishing to a dead broker took {elapsed:.1f} s"
        assert response.status_code == 503
        page = response.content.decode()
        assert "Face checking is unavailable" in page and "Nothing was lost" in page

        at_face_step.refresh_from_db()
        assert at_face_step.state == State.AWAITING_FACE and at_face_step.face_attempts == 0
        assert at_face_step.granted_at is None
        (failed,) = at_face_step.face_checks.all()
        assert (failed.state, failed.outcome) == (FaceCheck.State.DONE, Outcome.NOT_QUEUED)
        assert AuditEvent.objects.filter(action="face.not_queued", target_id=str(failed.pk)).count() == 1
        assert_no_probe_files(probe_dir)
        assert guardian_client.get(reverse("lookups:face", args=[at_face_step.pk])).status_code == 200
        assert guardian_client.get(reverse("lookups:results", args=[at_face_step.pk])).status_code == 302

        # Redis comes back (empty: no persistence); the worker reconnects by itself.
        connected_before = worker.log_text().count("Connected to redis")
        throwaway_redis.start()
        wait_for(
            lambda: worker.log_text().count("Connected to redis") > connected_before,
            timeout=60,
            what="the worker to reconnect to Redis",
            worker=worker,
        )
        response = submit_face(guardian_client, at_face_step, face_bytes(MATCHING_PHOTO))
        assert response.status_code == 302
        check = wait_done(at_face_step, worker)

    assert check.outcome == Outcome.MATCH
    assert at_face_step.state == State.GRANTED and at_face_step.face_attempts == 1
    assert guardian_client.get(reverse("lookups:results", args=[at_face_step.pk])).status_code == 200
    assert_no_probe_files(probe_dir)
