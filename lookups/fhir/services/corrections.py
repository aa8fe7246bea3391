"""Corrections (``amended``/``corrected``) and withdrawals (``entered-in-error``) of a report.

Invariants: only a report this sender delivered earlier can change; the earlier values are
kept encrypted in ``LabReportVersion``; a correction cannot change the patient; the audit
event carries version numbers and counts, never values.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.utils import timezone

from guardians import crypto
from guardians.models import Person
from lookups.audit import AuditEntry
from lookups.models import Notice, TestResult

from ..models import LabReport, LabReportVersion, PendingLabResult
from ..parsing import WITHDRAWN_STATUS, DeliveryRefused, Issue, _Report
from ..selectors import viewers_of
from .matching import CORRECTED, UNCHANGED, WITHDRAWN, Writes, _digest, _rows_payload, record_results


def _unknown_report() -> DeliveryRefused:
    # The same answer whether the identifier is unknown or belongs to another sender: the
    # lookup is scoped to the sender, so nothing about other laboratories' reports leaks.
    return DeliveryRefused(
        422,
        [
            Issue(
                "not-found",
                "This laboratory delivered no report with this identifier; a correction or "
                "withdrawal (amended, corrected, entered-in-error) must name an earlier final report.",
                "DiagnosticReport.identifier",
            )
        ],
    )


def _write_change(writes: Writes, report: _Report) -> str:
    """A correction (``amended``/``corrected``) or withdrawal (``entered-in-error``).

    The earlier version's values are kept encrypted in ``LabReportVersion``; the audit event
    carries version numbers and counts only, never values.
    """
    sender = writes.sender
    row = (
        LabReport.objects.select_for_update()
        .filter(sender=sender, identifier=report.identifier)
        .select_related("clinic")
        .first()
    )
    if row is None:
        raise _unknown_report()
    withdrawing = report.status == WITHDRAWN_STATUS
    if row.outcome == LabReport.Outcome.WITHDRAWN:
        if withdrawing:
            return UNCHANGED
        raise DeliveryRefused(
            422,
            [
                Issue(
                    "business-rule",
                    "This report was withdrawn (entered-in-error); send a new report with a new identifier.",
                    "DiagnosticReport.status",
                )
            ],
        )
    # A report discarded at the desk has neither results nor a pending row: a correction only moves
    # its version (the same answer as any correction, so the sender learns nothing about the desk).
    pending = PendingLabResult.objects.select_for_update().filter(report=row).first()
    results = list(row.results.select_for_update().select_related("elder").order_by("pk"))
    elder = results[0].elder if results else None
    if not withdrawing:
        digest = _digest(report)
        if digest == row.content_digest:
            return UNCHANGED  # the same correction delivered again
        current_hash = pending.id_number_hash if pending else (elder.id_number_hash if elder else report.id_hash)
        if current_hash != report.id_hash:
            raise DeliveryRefused(
                422,
                [
                    Issue(
                        "business-rule",
                        "A correction cannot change the patient; withdraw the report (entered-in-error) "
                        "and send a new one.",
                        "DiagnosticReport.subject",
                    )
                ],
            )
    if pending is not None:
        earlier = bytes(pending.payload_ciphertext)
    else:
        earlier = crypto.encrypt(
            json.dumps(
                {
                    "identifier": row.identifier,
                    "status": row.status,
                    "rows": [
                        {
                            "kind": r.kind,
                            "sampled_at": r.sampled_at.isoformat(),
                            "reported_at": r.reported_at.isoformat(),
                            "result": r.result,
                        }
                        for r in results
                    ],
                }
            ).encode()
        )
    LabReportVersion.objects.create(report=row, version=row.version, status=row.status, payload_ciphertext=earlier)
    now = timezone.now()
    before, after = row.version, row.version + 1
    details: dict[str, Any] = {
        "sender": sender.name,
        "version_from": before,
        "version_to": after,
        "status_from": row.status,
        "status_to": report.status,
        "waiting": pending is not None,
        "observations_before": len(results) if pending is None else None,
    }
    if withdrawing:
        if pending is not None:
            pending.delete()
        else:
            row.results.clear()
            TestResult.objects.filter(pk__in=[r.pk for r in results]).delete()
        row.outcome = LabReport.Outcome.WITHDRAWN
        row.withdrawn_at = now
        action = "fhir.report_withdrawn"
    else:
        if pending is not None:
            pending.payload_ciphertext = crypto.encrypt(json.dumps(_rows_payload(report)).encode())
            pending.kinds = ",".join(dict.fromkeys(r.kind for r in report.rows))[:200]
            pending.save(update_fields=["payload_ciphertext", "kinds"])
        elif elder is not None:
            for old, new in zip(results, report.rows, strict=False):
                old.kind, old.sampled_at, old.reported_at, old.result = (
                    new.kind,
                    new.sampled_at,
                    new.reported_at,
                    new.result,
                )
                old.save(update_fields=["kind", "sampled_at", "reported_at", "result"])
            added = record_results(writes, elder, report.rows[len(results) :], "fhir_correction")
            surplus = [r.pk for r in results[len(report.rows) :]]
            if surplus:
                row.results.remove(*surplus)
                TestResult.objects.filter(pk__in=surplus).delete()
            if added:
                row.results.add(*added)
        row.corrected_at = now
        row.content_digest = digest
        details["observations_after"] = len(report.rows)
        action = "fhir.report_corrected"
    row.version = after
    row.status = report.status
    row.save(update_fields=["version", "status", "outcome", "withdrawn_at", "corrected_at", "content_digest"])
    if elder is not None and results:
        _notice_if_seen(writes, elder, results, row, version=after, withdrawn=withdrawing, at=now)
    writes.events.append(
        AuditEntry(action=action, outcome="ok", subject=elder, target=row, clinic=row.clinic, details=details)
    )
    return WITHDRAWN if withdrawing else CORRECTED


def _notice_if_seen(
    writes: Writes,
    elder: Person,
    results: list[TestResult],
    row: LabReport,
    *,
    version: int,
    withdrawn: bool,
    at: dt.datetime,
) -> None:
    """The elder's notice rule for a lab change: when someone else was already shown the
    earlier values, the elder hears that they were corrected or withdrawn (who saw, which lab,
    when; never the values). Queued after the delivery's audit events, in its transaction."""
    from lookups.oversight.notices import notice_queue

    viewers = viewers_of(elder, [r.pk for r in results], since=min(r.recorded_at for r in results))
    if not viewers:
        return
    kind = Notice.Kind.RESULT_WITHDRAWN if withdrawn else Notice.Kind.RESULT_CORRECTED
    context = {"lab": writes.sender.name, "viewers": ", ".join(viewers)[:200], "at": at.isoformat()}
    writes.after.append(
        lambda: notice_queue(
            actor=writes.actor, kind=kind, object_key=f"lab-report:{row.pk}:v{version}", person=elder, context=context
        )
    )
