"""The periodic sweep of lab file imports: stale staged files deleted, dead runs given up, audited."""

import json
import os
import time
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings

from lookups.models import AuditEvent, TestResult
from lookups.services import results_import_jobs, sweeps
from tests import factories

from .test_results_import import _cells, _confirm, _csv, _token, _upload

pytestmark = pytest.mark.django_db


def _files(key: str):
    return results_import_jobs._paths(key)


def _age_status(key: str, seconds: float) -> None:
    """Pretend the status was last written ``seconds`` ago."""
    _upload_path, status_path, _claimed = _files(key)
    status = json.loads(status_path.read_text())
    status["updated"] = time.time() - seconds
    status_path.write_text(json.dumps(status))


def _age_upload(key: str, seconds: float) -> None:
    upload, _status, _claimed = _files(key)
    stamp = time.time() - seconds
    os.utime(upload, (stamp, stamp))


def _staged_key(staff_client, clinic, person, **extra) -> tuple[str, str]:
    token = _token(_upload(staff_client, clinic, _csv([_cells(person)]), **extra))
    return results_import_jobs.staged_import_open(user=staff_client.user, token=token).key, token


@pytest.fixture
def elders(staff, clinic):
    return [factories.make_person(staff, clinic, f"长者{i}", elder=True) for i in range(3)]


@pytest.fixture
def staff_client(staff_client, staff):
    staff_client.user = staff
    return staff_client


def _events():
    return list(AuditEvent.objects.filter(action="results.import_abandoned").order_by("sequence"))


def test_a_preview_never_confirmed_loses_its_file_after_90_minutes(staff_client, clinic, elders):
    old, _token_old = _staged_key(staff_client, clinic, elders[0])
    fresh, _token_fresh = _staged_key(staff_client, clinic, elders[1])
    _age_upload(old, results_import_jobs.UPLOAD_KEEP_SECONDS + 5)
    _age_upload(fresh, results_import_jobs.UPLOAD_KEEP_SECONDS - 60)

    assert sweeps.sweep_results_imports() == {"expired": 1, "abandoned": 0, "files": 1}

    assert not _files(old)[0].exists() and _files(fresh)[0].exists()
    assert results_import_jobs.read_status(old)["state"] == "expired"
    assert results_import_jobs.read_status(fresh)["state"] == "staged"
    (event,) = _events()
    assert (event.outcome, event.clinic_id, event.actor_label) == ("expired", clinic.pk, "system:sweeper")
    assert event.details == {"import": old, "state": "staged", "rows": 1, "user": staff_client.user.pk}
    assert sweeps.sweep_results_imports() == {"expired": 0, "abandoned": 0, "files": 0}  # once only
    assert len(_events()) == 1


def test_a_queued_import_whose_worker_never_came_is_given_up_and_cannot_start_later(staff_client, clinic, elders):
    token = _token(_upload(staff_client, clinic, _csv([_cells(e) for e in elders])))
    response, (key,) = _confirm(staff_client, token)
    _age_status(key, results_import_jobs.UPLOAD_KEEP_SECONDS + 5)
    read_by_a_worker_just_before = results_import_jobs.read_status(key), _files(key)[0].read_bytes()

    assert sweeps.sweep_results_imports() == {"expired": 0, "abandoned": 1, "files": 1}

    status = results_import_jobs.read_status(key)
    assert status["state"] == "abandoned" and not _files(key)[0].exists()
    (event,) = _events()
    assert (event.outcome, event.details["state"], event.details["rows"]) == ("failed", "queued", 3)
    # the message arrives late after all: the worker does not import anything
    from lookups.tasks import run_results_import

    assert run_results_import.apply(args=[key]).get() == "abandoned"
    # a worker that read "queued" and the file just before the sweep finds the run claimed
    status_before, data_before = read_by_a_worker_just_before
    with mock.patch.object(Path, "read_bytes", lambda _path: data_before):
        assert results_import_jobs._run(key, status_before) == "running"
    assert not TestResult.objects.exists()
    page = staff_client.get(response.url)
    assert "Refresh" not in page
    assert "The import did not finish. Nothing was imported" in page.content.decode()


def test_a_queued_import_is_left_alone_while_it_may_still_run(staff_client, clinic, elders):
    token = _token(_upload(staff_client, clinic, _csv([_cells(e) for e in elders])))
    _response, (key,) = _confirm(staff_client, token)
    _age_status(key, results_import_jobs.UPLOAD_KEEP_SECONDS - 60)
    _age_upload(key, results_import_jobs.UPLOAD_KEEP_SECONDS - 60)

    assert sweeps.sweep_results_imports() == {"expired": 0, "abandoned": 0, "files": 0}

    assert results_import_jobs.results_import_run(key=key) == "done"
    assert TestResult.objects.count() == 3 and _events() == []


def test_a_running_import_is_given_up_only_after_the_hard_time_limit(staff_client, clinic, elders):
    token = _token(_upload(staff_client, clinic, _csv([_cells(elders[0])])))
    _response, (key,) = _confirm(staff_client, token)
    results_import_jobs._write_status(key, state="running", started=time.time())  # a worker took it
    hard_limit = settings.KINGUARD_RESULTS_IMPORT_SOFT_TIME_LIMIT + 30

    _age_status(key, hard_limit)  # the worker may still be inside its transaction
    assert sweeps.sweep_results_imports()["abandoned"] == 0
    assert results_import_jobs.read_status(key)["state"] == "running"

    _age_status(key, hard_limit + 61)  # killed by the hard limit by now
    assert sweeps.sweep_results_imports() == {"expired": 0, "abandoned": 1, "files": 1}
    assert results_import_jobs.read_status(key)["state"] == "abandoned"
    assert [e.details["state"] for e in _events()] == ["running"]


def test_the_message_is_in_the_language_of_who_confirmed(staff_client, clinic, elders):
    staff_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    token = _token(_upload(staff_client, clinic, _csv([_cells(elders[0])])))
    _response, (key,) = _confirm(staff_client, token)
    _age_status(key, results_import_jobs.UPLOAD_KEEP_SECONDS + 5)
    sweeps.sweep_results_imports()
    message = results_import_jobs.read_status(key)["message"]
    assert "导入" in message and "import" not in message


def test_when_the_audit_cannot_be_written_no_file_changes_and_the_next_sweep_catches_up(staff_client, clinic, elders):
    old, _token_old = _staged_key(staff_client, clinic, elders[0])
    _age_upload(old, results_import_jobs.UPLOAD_KEEP_SECONDS + 5)
    with (
        mock.patch("lookups.audit.audit_record_many", side_effect=RuntimeError("database gone")),
        pytest.raises(RuntimeError),
    ):
        sweeps.sweep_results_imports()
    assert _files(old)[0].exists() and results_import_jobs.read_status(old)["state"] == "staged"
    assert sweeps.sweep_results_imports()["expired"] == 1 and not _files(old)[0].exists()


def test_junk_in_the_folder_does_not_stop_the_sweep(staff_client, clinic, elders):
    old, _token_old = _staged_key(staff_client, clinic, elders[0])
    _age_upload(old, results_import_jobs.UPLOAD_KEEP_SECONDS + 5)
    folder = _files(old)[1].parent
    (folder / "not-a-key.json").write_text("{}")
    (folder / ("a" * 32 + ".json")).write_text("not json")
    assert sweeps.sweep_results_imports()["expired"] == 1


def test_beat_runs_the_task_and_the_task_runs_the_sweep(staff_client, clinic, elders):
    from lookups.tasks import sweep_results_imports

    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "lookups.tasks.sweep_results_imports" in schedule
    old, _token_old = _staged_key(staff_client, clinic, elders[0])
    _age_upload(old, results_import_jobs.UPLOAD_KEEP_SECONDS + 5)
    assert sweep_results_imports.apply().get() == {"expired": 1, "abandoned": 0, "files": 1}
