"""Reads for FHIR-delivered results (no locks, no writes)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from django.db.models import QuerySet

from guardians.models import Person

from .models import LabReport, PendingLabResult


def results_mark_corrections(results: Sequence) -> Sequence:
    """Set ``corrected_at`` on each TestResult: when the lab last corrected its report, or None.

    One query for the whole list; the guardian's results page shows "corrected on <date>".
    """
    through = LabReport.results.through
    corrected = dict(
        through.objects.filter(testresult_id__in=[r.pk for r in results], labreport__corrected_at__isnull=False)
        .values_list("testresult_id", "labreport__corrected_at")
        .order_by("labreport__corrected_at")
    )
    for r in results:
        r.corrected_at = corrected.get(r.pk)
    return results


def pending_for_clinics(clinic_ids: Iterable[int]) -> QuerySet[PendingLabResult]:
    """Results waiting for a registration in these clinics, newest first, without payloads."""
    return (
        PendingLabResult.objects.filter(clinic_id__in=list(clinic_ids))
        .select_related("sender", "clinic")
        .defer("payload_ciphertext")
        .order_by("-received_at")
    )


def viewers_of(elder: Person, result_ids: Iterable[int], since: dt.datetime) -> list[str]:
    """Names of the people other than the elder who were shown any of these results.

    Read from the ``results.viewed`` events (each lists the result ids it showed and whether it
    was the elder's own lookup), from ``since`` (when the results were recorded) on.
    """
    from lookups.models import AuditEvent, LookupRequest

    wanted = set(result_ids)
    if not wanted:
        return []
    events = AuditEvent.objects.filter(
        action="results.viewed", subject=elder, created_at__gte=since, target_type="lookups.LookupRequest"
    ).values_list("target_id", "details")
    lookup_ids = [
        target
        for target, details in events
        if isinstance(details, dict) and not details.get("self") and wanted & set(details.get("results") or [])
    ]
    if not lookup_ids:
        return []
    names = LookupRequest.objects.filter(pk__in=lookup_ids).exclude(requester_person=elder)
    return sorted(set(names.values_list("requester_person__full_name", flat=True)))
