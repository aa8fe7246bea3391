"""Query counts of a delivery: people matched in one query, one audit head lock per delivery,
a bounded number of queries per report (the throughput target depends on it)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from guardians import id_numbers
from guardians import services as guardian_services
from lookups.audit import Actor, verify_chain
from lookups.models import AuditEvent, TestResult

from .test_delivery import post, report, transaction_bundle

pytestmark = pytest.mark.django_db

#: Queries per single-report delivery of a registered person, and per extra report in a Bundle.
#: (On PostgreSQL the batched audit append adds three fixed queries before its lock: the ids
#: drawn, the unlocked head read and the deferred-constraint check.)
SINGLE_MAX, PER_REPORT_MAX = 20, 5


@pytest.fixture
def lab(clinic):
    from lookups.fhir import tokens

    sender, token = tokens.sender_create(name="City Lab", clinic_ids=[clinic.pk])
    sender.token = token
    return sender


@pytest.fixture
def numbers(staff, clinic):
    """Two registered people and two ID numbers nobody registered."""
    made = [id_numbers.make_valid(f"110101194{n}0101123") for n in range(4)]
    for number in made[:2]:
        guardian_services.person_register(
            actor=Actor.for_user(staff), clinic=clinic, full_name="Wang Fang", id_number=number, is_elder=True
        )
    return made


def person_selects(queries) -> int:
    return sum('FROM "guardians_person"' in q["sql"] for q in queries)


def head_locks(queries) -> int:
    """Locking reads of the chain head (an unlocked read of it prepares a batch beforehand)."""
    if connection.vendor != "postgresql":  # SQLite has no row locks: every head read counts
        return sum('FROM "lookups_auditchainhead"' in q["sql"] for q in queries)
    return sum('FROM "lookups_auditchainhead"' in q["sql"] and "FOR UPDATE" in q["sql"] for q in queries)


def test_single_report_query_count(client, lab, numbers):
    with CaptureQueriesContext(connection) as queries:
        assert post(client, "/fhir/DiagnosticReport", report("R-1", number=numbers[0]), lab.token).status_code == 201
    assert person_selects(queries) == 1 and head_locks(queries) == 1
    assert len(queries) <= SINGLE_MAX, [q["sql"][:80] for q in queries]


def test_bundle_matches_people_once_and_locks_the_audit_head_once(client, lab, numbers):
    reports = [report(f"R-{n}", number=numbers[n % 4]) for n in range(20)]
    with CaptureQueriesContext(connection) as queries:
        response = post(client, "/fhir/", transaction_bundle(*reports), lab.token)
    assert response.status_code == 200, response.content
    assert person_selects(queries) == 1 and head_locks(queries) == 1
    assert len(queries) <= SINGLE_MAX + 19 * PER_REPORT_MAX, len(queries)
    assert TestResult.objects.count() == 10  # the registered half; the rest wait
    assert AuditEvent.objects.filter(action="result.recorded", details__source="fhir").count() == 10
    assert verify_chain()[1] is None  # the batched events chain exactly like single ones
