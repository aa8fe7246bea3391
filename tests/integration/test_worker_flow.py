"""The whole guarded lookup through the real URLs, the face check run by a real Celery
worker that consumes from Redis and writes to the PostgreSQL test database."""

import json

import pytest
from django.urls import reverse

from lookups.models import AuditEvent, FaceCheck, LookupRequest
from tests.helpers import face_bytes, submit_face
from tests.integration.workers import assert_no_probe_files, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
State = LookupRequest.State


@pytest.fixture
def worker(start_worker, redis_web):
    return start_worker()


def check_finished(lookup, worker) -> FaceCheck:
    """Wait for the worker to finish the lookup's latest check."""

    def done():
        check = lookup.face_checks.order_by("-created_at").first()
        return check if check is not None and check.state == FaceCheck.State.DONE else None

    check = wait_for(done, timeout=60, what="the worker to finish the face check", worker=worker)
    lookup.refresh_from_db()
    return check


def test_match_is_decided_by_the_worker_and_results_are_shown(
    guardian_client, worker, at_face_step, results, probe_dir
):
    response = submit_face(guardian_client, at_face_step, face_bytes("person_01/04.jpg"))
    assert response.status_code == 302 and response.url == reverse("lookups:wait", args=[at_face_step.pk])
    check = check_finished(at_face_step, worker)
    assert (check.outcome, check.deliveries) == (FaceCheck.Outcome.MATCH, 1)
    assert check.distance < check.threshold and check.probe_path == ""
    assert at_face_step.state == State.GRANTED
    assert AuditEvent.objects.get(action="face.verdict").actor_label == "system:face-worker"

    status = guardian_client.get(reverse("lookups:status", args=[at_face_step.pk])).json()
    assert status["done"] and status["next"] == reverse("lookups:results", args=[at_face_step.pk])
    page = guardian_client.get(status["next"])
    assert page.status_code == 200
    assert results[0].lab in page.content.decode() and "Negative" in page.content.decode()
    assert_no_probe_files(probe_dir)


def test_other_identity_is_refused_by_the_worker(guardian_client, worker, at_face_step, probe_dir):
    submit_face(guardian_client, at_face_step, face_bytes("person_04/02.jpg"))
    check = check_finished(at_face_step, worker)
    assert check.outcome == FaceCheck.Outcome.NO_MATCH and check.distance > check.threshold
    assert at_face_step.state == State.AWAITING_FACE and at_face_step.granted_at is None
    page = guardian_client.get(reverse("lookups:face", args=[at_face_step.pk])).content.decode()
    assert "did not match" in page
    assert guardian_client.get(reverse("lookups:results", args=[at_face_step.pk])).status_code == 302
    assert_no_probe_files(probe_dir)


def test_models_load_once_per_worker_process(guardian_client, worker, at_face_step, probe_dir, tmp_path):
    for image in ("person_04/02.jpg", "person_01/04.jpg"):
        submit_face(guardian_client, at_face_step, face_bytes(image))
        check_finished(at_face_step, worker)
    assert at_face_step.state == State.GRANTED
    (pool_pid,) = worker.children()

    from tests.integration.worker_probe import report_process

    out = tmp_path / "report.json"
    report_process.apply_async(args=[str(out)], queue="face")
    wait_for(out.exists, timeout=30, what="the worker's process report", worker=worker)
    report = json.loads(out.read_text())
    # The one pool process ran both checks: models loaded once (at worker_process_init),
    # then reused by every detection and encoding of both checks.
    assert report["pid"] == pool_pid
    assert report["model_loads"] == 1
    assert report["model_uses"] >= 2
    assert worker.log_text().count("face models loaded in") == 1
    assert_no_probe_files(probe_dir)
