"""The admin's paginator estimates large counts on PostgreSQL and counts small ones exactly."""

import pytest
from django.db import connection

from lookups.audit import Actor, audit_record
from lookups.models import AuditEvent
from lookups.oversight import paginator as paginator_module
from lookups.oversight.paginator import EstimatedCountPaginator
from tests.helpers import require_postgresql

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(db):
    actor = Actor.system("test")
    return [audit_record(actor=actor, action="otp.failed" if i % 3 else "otp.verified") for i in range(30)]


def test_small_counts_are_exact(events):
    assert EstimatedCountPaginator(AuditEvent.objects.all(), 10).count == 30
    assert EstimatedCountPaginator(AuditEvent.objects.filter(action="otp.verified"), 10).count == 10
    assert EstimatedCountPaginator(AuditEvent.objects.none(), 10).count == 0


def test_large_counts_use_the_planner_on_postgresql(events, monkeypatch):
    require_postgresql()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE lookups_auditevent")
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = 'lookups_auditevent'::regclass")
        reltuples = cursor.fetchone()[0]
    monkeypatch.setattr(paginator_module, "EXACT_BELOW", 0)
    audit_record(actor=Actor.system("test"), action="otp.failed")  # not yet in the statistics
    unfiltered = EstimatedCountPaginator(AuditEvent.objects.all(), 10)
    assert unfiltered.count == reltuples == 30  # the estimate, not COUNT(*) (31)
    filtered = EstimatedCountPaginator(AuditEvent.objects.filter(action="otp.verified"), 10)
    assert 1 <= filtered.count <= 31
