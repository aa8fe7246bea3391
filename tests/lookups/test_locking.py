"""Only transitions lock the lookup row: page loads and the status poll read without
``SELECT ... FOR UPDATE``, and a face POST locks the lookup row once (PostgreSQL only:
SQLite has no FOR UPDATE)."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lookups.models import AuditEvent, LookupRequest
from tests.helpers import face_bytes, lookup_at_face_step, require_postgresql, submit_face

pytestmark = pytest.mark.django_db
State = LookupRequest.State


@pytest.fixture(autouse=True)
def _postgres_only():
    require_postgresql("counting row locks needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def at_face_step(guardian_client, authorization, guardian_device, enrolled_guardian):
    """As the shared fixture, without test results (this module counts queries and locks)."""
    return lookup_at_face_step(guardian_client, authorization.elder, guardian_device)


def _lookup_locks(queries) -> int:
    return sum(
        "FOR UPDATE" in q["sql"] and 'FROM "lookups_lookuprequest"' in q["sql"] for q in queries.captured_queries
    )


def _all_locks(queries) -> int:
    return sum("FOR UPDATE" in q["sql"] for q in queries.captured_queries)


def test_the_status_poll_and_page_loads_take_no_row_lock(guardian_client, at_face_step):
    # The first face-page load issues the challenge (a write: lookup lock + audit); a reload
    # shows the same live challenge and, like the poll, reads without any lock.
    guardian_client.get(reverse("lookups:face", args=[at_face_step.pk]))
    for name in ("lookups:status", "lookups:face", "lookups:otp"):
        with CaptureQueriesContext(connection) as queries:
            response = guardian_client.get(reverse(name, args=[at_face_step.pk]))
        assert response.status_code in (200, 302)
        assert queries.captured_queries, "no query seen: the count below would prove nothing"
        assert _all_locks(queries) == 0, name
    assert guardian_client.get(reverse("lookups:status", args=[at_face_step.pk])).json()["state"] == State.AWAITING_FACE


def test_a_face_post_locks_the_lookup_row_once(guardian_client, at_face_step):
    with CaptureQueriesContext(connection) as queries:
        response = submit_face(guardian_client, at_face_step, face_bytes("person_01/04.jpg"))
    assert response.status_code == 302
    at_face_step.refresh_from_db()
    assert at_face_step.state == State.CHECKING_FACE
    assert _lookup_locks(queries) == 1


def test_a_poll_after_the_time_ran_out_still_expires_the_lookup_under_the_lock(guardian_client, at_face_step, settings):
    LookupRequest.objects.filter(pk=at_face_step.pk).update(
        created_at=at_face_step.created_at - dt.timedelta(minutes=settings.KINGUARD_LOOKUP_TTL_MINUTES + 1)
    )
    with CaptureQueriesContext(connection) as queries:
        status = guardian_client.get(reverse("lookups:status", args=[at_face_step.pk])).json()
    assert status["state"] == State.EXPIRED and status["done"]
    assert _lookup_locks(queries) == 1
    assert AuditEvent.objects.filter(action="lookup.expired", target_id=str(at_face_step.pk)).count() == 1


def test_the_poll_still_hides_other_peoples_lookups(guardian_client, at_face_step, staff):
    import uuid

    assert guardian_client.get(reverse("lookups:status", args=[uuid.uuid4()])).status_code == 404
    guardian_client.force_login(staff)  # someone else, signed in: the lookup looks missing
    assert guardian_client.get(reverse("lookups:status", args=[at_face_step.pk])).status_code == 404
