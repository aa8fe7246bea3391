"""The request id is carried into Celery task headers and the worker's log lines."""

import logging

import pytest

from config.celery import REQUEST_ID_HEADER, app, clear_sessions
from config.request_context import RequestIdLogFilter, request_id_var


@app.task(name="tests.log_request_id")
def log_request_id() -> str:
    logging.getLogger("kinguard.test").info("inside task")
    return request_id_var.get()


def _published_headers(queue: str = "default") -> dict:
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        try:
            message = simple.get(timeout=2)
            message.ack()
            return dict(message.headers)
        finally:
            simple.close()


@pytest.fixture(autouse=True)
def _empty_default_queue():
    """Other tests leave their own task messages on the shared in-memory broker: start empty."""
    with app.connection_for_write() as conn:
        simple = conn.SimpleQueue("default")
        try:
            simple.clear()
        finally:
            simple.close()


def test_publish_inside_a_request_carries_its_id():
    token = request_id_var.set("abc123def")
    try:
        log_request_id.delay()
    finally:
        request_id_var.reset(token)
    assert _published_headers()[REQUEST_ID_HEADER] == "abc123def"


def test_publish_outside_a_request_carries_none():
    log_request_id.delay()
    assert REQUEST_ID_HEADER not in _published_headers()


def test_worker_run_logs_with_the_carried_id(caplog):
    caplog.handler.addFilter(RequestIdLogFilter())
    with caplog.at_level(logging.INFO, logger="kinguard.test"):
        result = log_request_id.apply(headers={REQUEST_ID_HEADER: "feed42"})
    assert result.get() == "feed42"
    assert [r.request_id for r in caplog.records if r.getMessage() == "inside task"] == ["feed42"]
    assert request_id_var.get() == "-"  # reset after the task


def test_a_forged_header_is_not_logged_verbatim():
    assert log_request_id.apply(headers={REQUEST_ID_HEADER: "x\nFAKE LOG LINE"}).get() == "-"


@pytest.mark.django_db
def test_clear_sessions_prunes_expired_sessions():
    import datetime as dt

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    Session.objects.create(session_key="old" * 10, session_data="x", expire_date=timezone.now() - dt.timedelta(days=1))
    Session.objects.create(session_key="new" * 10, session_data="x", expire_date=timezone.now() + dt.timedelta(days=1))
    clear_sessions.apply().get()
    assert list(Session.objects.values_list("session_key", flat=True)) == ["new" * 10]


def test_clear_sessions_is_on_beat(settings):
    assert settings.CELERY_BEAT_SCHEDULE["clear-sessions"]["task"] == clear_sessions.name
