"""The audit log's indexes (migration 0013): only those the oversight reads use, and every
oversight lookup still served by an index."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from lookups.models import AuditEvent
from tests.helpers import require_postgresql

pytestmark = pytest.mark.django_db

EXPECTED = {
    "audit_action_seq_idx": ["action", "sequence"],
    "audit_subject_seq_idx": ["subject_id", "sequence"],
    "audit_actor_seq_idx": ["actor_id", "sequence"],
    "audit_clinic_seq_asc_idx": ["clinic_id", "sequence"],
    "audit_actor_label_seq_asc_idx": ["actor_label", "sequence"],
    "lookups_aud_created_a462a7_idx": ["created_at"],
}


def _indexes() -> dict[str, dict]:
    with connection.cursor() as cursor:
        return connection.introspection.get_constraints(cursor, AuditEvent._meta.db_table)


def test_the_audit_table_has_exactly_the_lean_index_set():
    found = {name: info["columns"] for name, info in _indexes().items() if info["index"] and not info["unique"]}
    assert found == EXPECTED  # the old (x, -sequence) and (action, created_at) ones are gone


def test_composite_indexes_are_ascending_in_sequence_on_postgresql():
    """Ascending (x, sequence): appends go to the right end of each group (see the model)."""
    require_postgresql()
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", [AuditEvent._meta.db_table])
        definitions = [row[0] for row in cursor.fetchall()]
    assert not [d for d in definitions if "DESC" in d]
    assert not [d for d in definitions if "(action, created_at)" in d]


@pytest.mark.parametrize(
    "queryset",
    [
        lambda: AuditEvent.objects.filter(subject_id=1).order_by("-sequence")[:100],
        lambda: AuditEvent.objects.filter(actor_id=1).order_by("-sequence")[:100],
        lambda: AuditEvent.objects.filter(action="lookup.denied").order_by("-sequence")[:100],
        lambda: AuditEvent.objects.filter(clinic_id__in=[1]).order_by("-sequence")[:100],
        lambda: AuditEvent.objects.filter(actor_label="system:x").order_by("-sequence")[:100],
        lambda: AuditEvent.objects.filter(
            created_at__gte=timezone.now() - dt.timedelta(days=1), created_at__lt=timezone.now()
        ),
    ],
    ids=["subject", "actor", "action", "clinic", "actor_label", "period"],
)
def test_each_oversight_lookup_can_use_an_index(queryset):
    """With sequential scans priced out, the planner must find an index for each lookup
    (it would fall back to a Seq Scan if the column had none)."""
    require_postgresql()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = queryset().query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on lookups_auditevent" not in plan, plan
