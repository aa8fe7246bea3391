"""Staff pages cost a constant number of queries, with 1,000+ rows in the lists."""

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from guardians.models import Authorization, Person
from lookups.models import TestResult
from tests import factories

pytestmark = pytest.mark.django_db
MAX_QUERIES = 12


def _bulk_people(clinic, staff, count, *, prefix):
    """Test data only: rows inserted directly (the write path is exercised elsewhere)."""
    people = [
        Person(
            clinic=clinic,
            full_name=f"{prefix} {i:04d}",
            id_number_hash=uuid.uuid4().hex * 2,
            id_number_ciphertext=b"x",
            id_number_masked="110101********0000",
            birth_date=dt.date(1940, 1, 1),
            is_elder=i % 2 == 0,
            is_guardian=i % 2 == 1,
            created_by=staff,
        )
        for i in range(count)
    ]
    return Person.objects.bulk_create(people)


def _bulk_links(clinic, staff, manager, people):
    now = timezone.now()
    elders = [p for p in people if p.is_elder]
    guardians = [p for p in people if p.is_guardian]
    Authorization.objects.bulk_create(
        Authorization(
            guardian=g,
            elder=e,
            clinic=clinic,
            relationship="child",
            status="pending" if i % 3 == 0 else "active",
            valid_from=now - dt.timedelta(days=300),
            valid_until=now + dt.timedelta(days=1 + i % 60),
            consent_basis="elder_present",
            registered_by=staff,
            approved_by=None if i % 3 == 0 else manager,
        )
        for i, (g, e) in enumerate(zip(guardians, elders, strict=False))
    )
    TestResult.objects.bulk_create(
        TestResult(
            clinic=clinic,
            elder=e,
            kind="antigen",
            sampled_at=now - dt.timedelta(days=k + 1),
            site="Site",
            lab="Lab",
            result="Negative",
            reported_at=now - dt.timedelta(days=k),
            recorded_by=staff,
            sampling_photo="sampling/x.png" if k == 0 else "",
        )
        for e in elders
        for k in range(3)
    )


def _pages(elder, authorization):
    return {
        "home": reverse("staff:home"),
        "people": reverse("staff:people"),
        "people search": reverse("staff:people") + "?q=Row&role=elder",
        "authorizations pending": reverse("staff:authorizations") + "?view=pending",
        "authorizations expiring": reverse("staff:authorizations") + "?view=expiring&page=2",
        "authorizations all": reverse("staff:authorizations") + "?view=all&q=Row",
        "results": reverse("staff:results"),
        "results search": reverse("staff:results") + "?q=Row&page=3",
        "person": reverse("staff:person", args=[elder.public_id]),
        "authorization": reverse("staff:authorization", args=[authorization.pk]),
        "guardian picker": reverse("staff:authorization_new") + f"?elder={elder.public_id}&q=Row",
    }


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def test_query_counts_do_not_grow_with_rows(staff_client, staff, manager, clinic, other_clinic, elder, authorization):
    few = _bulk_people(clinic, staff, 10, prefix="Row")
    _bulk_links(clinic, staff, manager, few)
    # other clinics' rows never show up but exist in the tables
    _bulk_people(other_clinic, staff, 50, prefix="Row")
    pages = _pages(elder, authorization)
    small = {name: _count(staff_client, url) for name, url in pages.items()}

    many = _bulk_people(clinic, staff, 1200, prefix="Row")
    _bulk_links(clinic, staff, manager, many)
    for _ in range(25):  # a long history on the person page too
        factories.make_result(staff, elder)
    assert Person.objects.filter(clinic=clinic).count() > 1200
    assert Authorization.objects.filter(clinic=clinic).count() > 600
    assert TestResult.objects.filter(clinic=clinic).count() > 1800
    large = {name: _count(staff_client, url) for name, url in pages.items()}
    assert large == small
    # The person page also writes its audit event (a staff view of a record) and reads the
    # record's sections: more queries, but just as constant.
    assert large.pop("person") <= 20
    assert max(large.values()) <= MAX_QUERIES, large


def test_people_list_with_1200_rows_is_paginated(staff_client, staff, clinic, django_assert_max_num_queries):
    _bulk_people(clinic, staff, 1200, prefix="Row")
    with django_assert_max_num_queries(8):
        response = staff_client.get(reverse("staff:people"), {"page": 3})
    page = response.context["page"]
    assert page.paginator.count == 1200 and len(page.object_list) == 50 and page.number == 3
    assert "Row 0100" in response.content.decode()


def test_results_list_with_1000_plus_rows(staff_client, staff, manager, clinic, django_assert_max_num_queries):
    _bulk_links(clinic, staff, manager, _bulk_people(clinic, staff, 800, prefix="Row"))
    with django_assert_max_num_queries(8):
        response = staff_client.get(reverse("staff:results"), {"q": "row 01"})
    assert response.context["page"].paginator.count == 3 * 50  # Row 0100..0198, even rows are elders


def test_pending_queue_with_1000_plus_rows(staff_client, staff, manager, clinic, django_assert_max_num_queries):
    _bulk_links(clinic, staff, manager, _bulk_people(clinic, staff, 3200, prefix="Row"))
    with django_assert_max_num_queries(8):
        response = staff_client.get(reverse("staff:authorizations"), {"view": "pending"})
    assert response.context["page"].paginator.count > 500
