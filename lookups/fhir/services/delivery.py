"""Result delivery from a laboratory over FHIR R4: validate, then record, queue or correct.

Invariants:
- Everything in a delivery is validated before anything is written; a ``transaction`` Bundle
  is written in one ``atomic`` block (all or nothing), a ``batch`` Bundle entry by entry.
- The answer to the sender is the same whether the person was found or not.
- Every delivery from an authenticated sender is audited (``fhir.delivery_accepted`` or
  ``fhir.delivery_refused``) with counts and outcome, never result values or ID numbers.
- Writes are collected per delivery (``matching.Writes``): the people of all its reports are
  matched in one query, and its audit events (``result.recorded`` per result, corrections,
  ``fhir.delivery_accepted``) are appended at its end with one chain-head lock
  (``audit_record_many``), in the same transaction, so the lock is held only while committing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from lookups.audit import Actor, AuditEntry, audit_record

from ..models import LabSender
from ..parsing import (
    MAX_ENTRIES,
    DeliveryRefused,
    Issue,
    _Context,
    _Report,
    _report,
    _validate,
    operation_outcome,
)
from .corrections import _write_change
from .matching import CORRECTED, CREATED, ENTRY_STATUS, UNCHANGED, WITHDRAWN, Writes, _write_new, people_for


def _write(writes: Writes, report: _Report) -> str:
    """Record, queue, correct or withdraw one report; UNCHANGED for a redelivery."""
    if report.status == "final":
        return _write_new(writes, report)
    return _write_change(writes, report)


def actor_for(sender: LabSender, ip: str | None = None) -> Actor:
    return Actor(user=None, label=sender.audit_label, ip=ip)


def audit_refused(sender: LabSender, actor: Actor, refused: DeliveryRefused, *, kind: str, entries: int = 0) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="fhir.delivery_refused",
            outcome=str(refused.status),
            details={
                "sender": sender.name,
                "delivery": kind,
                "entries": entries,
                "issues": sorted({i.code for i in refused.issues}),
            },
        )


def _audit_accepted(writes: Writes, *, kind: str, counts: dict[str, int]) -> None:
    """The delivery's event, after its writes' events; all appended with one head lock."""
    writes.events.append(
        AuditEntry(
            action="fhir.delivery_accepted",
            outcome="ok",
            details={"sender": writes.sender.name, "delivery": kind, **counts},
        )
    )
    writes.flush()


@dataclass
class Delivered:
    """The HTTP status and FHIR resource to answer; identical for matched and unmatched people."""

    status: int
    body: dict[str, Any]


def deliver_report(*, sender: LabSender, actor: Actor, data: dict[str, Any]) -> Delivered:
    """``POST /fhir/DiagnosticReport``: one report with contained Patient and Observations."""
    try:
        if data.get("resourceType") != "DiagnosticReport":
            raise DeliveryRefused(
                400, [Issue("not-supported", "This endpoint takes a DiagnosticReport.", "resourceType")]
            )
        _validate(DiagnosticReport, data, "DiagnosticReport")
        ctx = _Context(sender, {})
        report = _report(ctx, data, "DiagnosticReport", timezone.now())
    except DeliveryRefused as refused:
        audit_refused(sender, actor, refused, kind="DiagnosticReport", entries=1)
        raise
    try:
        with transaction.atomic():
            writes = Writes(sender, actor, people_for(ctx.clinics, [report]))
            written = _write(writes, report)
            _audit_accepted(
                writes,
                kind="DiagnosticReport",
                counts={
                    "reports": 1,
                    "new": int(written == CREATED),
                    "changed": int(written in (CORRECTED, WITHDRAWN)),
                    "observations": len(report.rows),
                },
            )
    except DeliveryRefused as refused:  # nothing was written (the transaction rolled back)
        audit_refused(sender, actor, refused, kind="DiagnosticReport", entries=1)
        raise
    text = {
        CREATED: "Report accepted.",
        UNCHANGED: "Report already received; nothing changed.",
        CORRECTED: "Correction accepted; the earlier values are replaced.",
        WITHDRAWN: "Report withdrawn (entered-in-error).",
    }[written]
    return Delivered(
        201 if written == CREATED else 200, operation_outcome([Issue("informational", text, severity="information")])
    )


def deliver_bundle(*, sender: LabSender, actor: Actor, data: dict[str, Any], via: str = "") -> Delivered:
    """``POST /fhir/``: a transaction (all or nothing) or batch (entry by entry) Bundle.

    ``via`` names another door in the audit's ``delivery`` (``lookups.hl7`` passes ``HL7v2/ORU^R01``)."""
    raw_entries = data.get("entry")
    entries: list[Any] = raw_entries if isinstance(raw_entries, list) else []
    kind = data.get("type") if isinstance(data.get("type"), str) else "?"
    try:
        if data.get("resourceType") != "Bundle":
            raise DeliveryRefused(
                400,
                [
                    Issue(
                        "not-supported",
                        "POST /fhir/ takes a Bundle; a single report goes to /fhir/DiagnosticReport.",
                        "resourceType",
                    )
                ],
            )
        if kind not in ("transaction", "batch"):
            raise DeliveryRefused(
                400, [Issue("not-supported", "Bundle.type must be transaction or batch.", "Bundle.type")]
            )
        if len(entries) > MAX_ENTRIES:
            raise DeliveryRefused(
                413, [Issue("too-costly", f"A Bundle may hold at most {MAX_ENTRIES} entries.", "Bundle.entry")]
            )
        if not entries:
            raise DeliveryRefused(400, [Issue("required", "The Bundle has no entries.", "Bundle.entry")])
        _validate(Bundle, data, "Bundle")
        if kind == "transaction":
            return _transaction(sender, actor, entries, via=via)
        return _batch(sender, actor, entries)
    except DeliveryRefused as refused:
        audit_refused(sender, actor, refused, kind=via or f"Bundle/{kind}"[:40], entries=len(entries))
        raise


def _entry_types(entries: list[dict[str, Any]]) -> None:
    issues = []
    for n, entry in enumerate(entries):
        rtype = (entry.get("resource") or {}).get("resourceType")
        if rtype not in ("DiagnosticReport", "Observation", "Patient"):
            issues.append(
                Issue(
                    "not-supported",
                    f"Resource type {str(rtype)[:40]!r} is not accepted (DiagnosticReport, Observation, Patient).",
                    f"Bundle.entry[{n}].resource",
                )
            )
        method = (entry.get("request") or {}).get("method")
        if method not in (None, "POST", "PUT"):
            issues.append(
                Issue(
                    "not-supported",
                    "Only POST (or PUT) entries are accepted; nothing can be read.",
                    f"Bundle.entry[{n}].request.method",
                )
            )
    if issues:
        raise DeliveryRefused(400, issues[:20])


def _transaction(sender: LabSender, actor: Actor, entries: list[dict[str, Any]], via: str = "") -> Delivered:
    _entry_types(entries)
    by_url = {e["fullUrl"]: e["resource"] for e in entries if e.get("fullUrl")}
    ctx = _Context(sender, by_url)
    now = timezone.now()
    reports: list[_Report] = []
    used: set[int] = set()
    for n, entry in enumerate(entries):
        if entry["resource"]["resourceType"] == "DiagnosticReport":
            report = _report(ctx, entry["resource"], f"Bundle.entry[{n}].resource", now)
            report.entries.append(n)
            reports.append(report)
            used.add(n)
    if not reports:
        raise DeliveryRefused(422, [Issue("required", "The Bundle holds no DiagnosticReport.", "Bundle.entry")])
    if len({r.identifier for r in reports}) != len(reports):
        raise DeliveryRefused(
            422, [Issue("duplicate", "Two reports in the Bundle carry the same identifier.", "Bundle.entry")]
        )
    status_of: dict[int, str] = {}
    with transaction.atomic():
        new = changed = 0
        writes = Writes(sender, actor, people_for(ctx.clinics, reports))
        for report in reports:
            written = _write(writes, report)
            new += written == CREATED
            changed += written in (CORRECTED, WITHDRAWN)
            status_of[report.entries[0]] = ENTRY_STATUS[written]
        _audit_accepted(
            writes,
            kind=via or "Bundle/transaction",
            counts={
                "reports": len(reports),
                "new": new,
                "changed": changed,
                "observations": sum(len(r.rows) for r in reports),
                "entries": len(entries),
            },
        )
    response = [{"response": {"status": status_of.get(n, "200 OK")}} for n in range(len(entries))]
    return Delivered(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": response})


def _batch(sender: LabSender, actor: Actor, entries: list[dict[str, Any]]) -> Delivered:
    """Each entry a DiagnosticReport with contained Patient and Observations, on its own.

    All entries are checked first (the people of all of them matched in one query); each
    valid one is then written in its own transaction with its own events.
    """
    ctx = _Context(sender, {})
    now = timezone.now()
    parsed: list[_Report | DeliveryRefused] = []
    for n, entry in enumerate(entries):
        where = f"Bundle.entry[{n}].resource"
        try:
            resource = entry.get("resource") or {}
            if resource.get("resourceType") != "DiagnosticReport":
                raise DeliveryRefused(
                    400,
                    [
                        Issue(
                            "not-supported",
                            "Batch entries must be DiagnosticReports (with contained Patient and Observations).",
                            where,
                        )
                    ],
                )
            parsed.append(_report(ctx, resource, where, now))
        except DeliveryRefused as refused:
            parsed.append(refused)
    people = people_for(ctx.clinics, [r for r in parsed if isinstance(r, _Report)])
    answers: list[dict[str, Any]] = []
    counts = {"reports": 0, "new": 0, "changed": 0, "refused": 0, "entries": len(entries)}
    for item in parsed:
        try:
            if isinstance(item, DeliveryRefused):
                raise item
            with transaction.atomic():
                writes = Writes(sender, actor, people)
                written = _write(writes, item)
                writes.flush()
            counts["reports"] += 1
            counts["new"] += written == CREATED
            counts["changed"] += written in (CORRECTED, WITHDRAWN)
            answers.append({"response": {"status": ENTRY_STATUS[written]}})
        except DeliveryRefused as refused:
            counts["refused"] += 1
            answers.append({"response": {"status": f"{refused.status}", "outcome": operation_outcome(refused.issues)}})
    with transaction.atomic():
        _audit_accepted(Writes(sender, actor, {}), kind="Bundle/batch", counts=counts)
    return Delivered(200, {"resourceType": "Bundle", "type": "batch-response", "entry": answers})
