"""Reads for FHIR-delivered results (no locks, no writes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db.models import QuerySet

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
