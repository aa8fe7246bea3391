"""Result delivery from a laboratory over FHIR R4: validate, map, match, record or queue.

Invariants:
- Everything in a delivery is validated before anything is written; a ``transaction`` Bundle
  is written in one ``atomic`` block (all or nothing), a ``batch`` Bundle entry by entry.
- A person is never created. The ID number is matched by its keyed hash among the people of
  the sender's clinics only; unmatched results wait encrypted in ``PendingLabResult``. The
  answer to the sender is the same whether the person was found or not.
- The lab's report identifier (``DiagnosticReport.identifier`` system|value) makes a
  redelivery a no-op.
- Every delivery from an authenticated sender is audited (``fhir.delivery_accepted`` or
  ``fhir.delivery_refused``) with counts and outcome, never result values or ID numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from guardians import crypto
from guardians.models import Person
from lookups.audit import Actor, audit_record
from lookups.models import TestResult

from .models import LabReport, LabReportVersion, LabSender, PendingLabResult
from .parsing import (  # noqa: F401 (re-exported: views and callers import them from here)
    CLINIC_SYSTEM,
    DEFAULT_ID_SYSTEMS,
    MAX_BODY_BYTES,
    MAX_ENTRIES,
    WITHDRAWN_STATUS,
    DeliveryRefused,
    Issue,
    _Context,
    _Report,
    _report,
    _validate,
    operation_outcome,
    parse_json,
)

# --- writing --------------------------------------------------------------------------------


CREATED, UNCHANGED, CORRECTED, WITHDRAWN = "created", "unchanged", "corrected", "withdrawn"
#: The answer per write outcome in a Bundle response.
ENTRY_STATUS = {CREATED: "201 Created", UNCHANGED: "200 OK", CORRECTED: "200 OK", WITHDRAWN: "200 OK"}


def _rows_payload(report: _Report) -> dict[str, Any]:
    return {
        "identifier": report.identifier,
        "status": report.status,
        "rows": [
            {
                "kind": r.kind,
                "code": r.code,
                "sampled_at": r.sampled_at.isoformat(),
                "reported_at": r.reported_at.isoformat(),
                "result": r.result,
            }
            for r in report.rows
        ],
    }


def _digest(report: _Report) -> str:
    """Keyed hash of the rows (values included): equal rows, equal digest; not guessable."""
    rows = _rows_payload(report)["rows"]
    return crypto.keyed_hash("fhir-report:" + json.dumps(rows, sort_keys=True, separators=(",", ":")))


def _write(sender: LabSender, actor: Actor, report: _Report) -> str:
    """Record, queue, correct or withdraw one report; UNCHANGED for a redelivery."""
    if report.status == "final":
        return _write_new(sender, actor, report)
    return _write_change(sender, actor, report)


def _write_new(sender: LabSender, actor: Actor, report: _Report) -> str:
    from lookups.services import result_save

    if LabReport.objects.filter(sender=sender, identifier=report.identifier).exists():
        return UNCHANGED
    clinic = report.clinic
    if clinic is None:  # not reached: only a withdrawal (entered-in-error) carries no clinic
        raise DeliveryRefused(422, [Issue("required", "The report names no clinic.", "DiagnosticReport.subject")])
    person = Person.objects.filter(id_number_hash=report.id_hash, clinic__in=list(sender.clinics.all())).first()
    try:
        with transaction.atomic():
            row = LabReport.objects.create(
                sender=sender,
                identifier=report.identifier,
                status=report.status,
                outcome=LabReport.Outcome.RECORDED if person else LabReport.Outcome.PENDING,
                clinic=person.clinic if person else clinic,
                content_digest=_digest(report),
            )
    except IntegrityError:  # a concurrent redelivery won the race
        return UNCHANGED
    if person is not None:
        results = [
            result_save(
                actor=actor,
                elder=person,
                kind=r.kind,
                sampled_at=r.sampled_at,
                site=sender.name[:200],
                lab=sender.name[:200],
                result=r.result,
                reported_at=r.reported_at,
                source="fhir",
            )
            for r in report.rows
        ]
        row.results.set(results)
    else:
        PendingLabResult.objects.create(
            sender=sender,
            clinic=clinic,
            report=row,
            id_number_hash=report.id_hash,
            id_number_masked=report.id_masked,
            kinds=",".join(dict.fromkeys(r.kind for r in report.rows))[:200],
            payload_ciphertext=crypto.encrypt(json.dumps(_rows_payload(report)).encode()),
        )
    return CREATED


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


def _write_change(sender: LabSender, actor: Actor, report: _Report) -> str:
    """A correction (``amended``/``corrected``) or withdrawal (``entered-in-error``).

    The earlier version's values are kept encrypted in ``LabReportVersion``; the audit event
    carries version numbers and counts only, never values.
    """
    from lookups.services import result_save

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
        else:
            if elder is None:  # a recorded report whose results are gone (the caller's atomic rolls back)
                raise DeliveryRefused(
                    422,
                    [
                        Issue(
                            "business-rule",
                            "The results of this report are no longer on record; send a new report.",
                            "DiagnosticReport.identifier",
                        )
                    ],
                )
            for old, new in zip(results, report.rows, strict=False):
                old.kind, old.sampled_at, old.reported_at, old.result = (
                    new.kind,
                    new.sampled_at,
                    new.reported_at,
                    new.result,
                )
                old.save(update_fields=["kind", "sampled_at", "reported_at", "result"])
            added = [
                result_save(
                    actor=actor,
                    elder=elder,
                    kind=r.kind,
                    sampled_at=r.sampled_at,
                    site=sender.name[:200],
                    lab=sender.name[:200],
                    result=r.result,
                    reported_at=r.reported_at,
                    source="fhir_correction",
                )
                for r in report.rows[len(results) :]
            ]
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
    audit_record(
        actor=actor, action=action, outcome="ok", subject=elder, target=row, clinic=row.clinic, details=details
    )
    return WITHDRAWN if withdrawing else CORRECTED


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


def _audit_accepted(actor: Actor, sender: LabSender, *, kind: str, counts: dict[str, int]) -> None:
    audit_record(
        actor=actor,
        action="fhir.delivery_accepted",
        outcome="ok",
        details={"sender": sender.name, "delivery": kind, **counts},
    )


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
        report = _report(_Context(sender, {}), data, "DiagnosticReport", timezone.now())
    except DeliveryRefused as refused:
        audit_refused(sender, actor, refused, kind="DiagnosticReport", entries=1)
        raise
    try:
        with transaction.atomic():
            written = _write(sender, actor, report)
            _audit_accepted(
                actor,
                sender,
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


def deliver_bundle(*, sender: LabSender, actor: Actor, data: dict[str, Any]) -> Delivered:
    """``POST /fhir/``: a transaction (all or nothing) or batch (entry by entry) Bundle."""
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
            return _transaction(sender, actor, entries)
        return _batch(sender, actor, entries)
    except DeliveryRefused as refused:
        audit_refused(sender, actor, refused, kind=f"Bundle/{kind}"[:40], entries=len(entries))
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


def _transaction(sender: LabSender, actor: Actor, entries: list[dict[str, Any]]) -> Delivered:
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
        for report in reports:
            written = _write(sender, actor, report)
            new += written == CREATED
            changed += written in (CORRECTED, WITHDRAWN)
            status_of[report.entries[0]] = ENTRY_STATUS[written]
        _audit_accepted(
            actor,
            sender,
            kind="Bundle/transaction",
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
    """Each entry a DiagnosticReport with contained Patient and Observations, on its own."""
    ctx = _Context(sender, {})
    now = timezone.now()
    answers: list[dict[str, Any]] = []
    counts = {"reports": 0, "new": 0, "changed": 0, "refused": 0, "entries": len(entries)}
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
            report = _report(ctx, resource, where, now)
            with transaction.atomic():
                written = _write(sender, actor, report)
            counts["reports"] += 1
            counts["new"] += written == CREATED
            counts["changed"] += written in (CORRECTED, WITHDRAWN)
            answers.append({"response": {"status": ENTRY_STATUS[written]}})
        except DeliveryRefused as refused:
            counts["refused"] += 1
            answers.append({"response": {"status": f"{refused.status}", "outcome": operation_outcome(refused.issues)}})
    with transaction.atomic():
        _audit_accepted(actor, sender, kind="Bundle/batch", counts=counts)
    return Delivered(200, {"resourceType": "Bundle", "type": "batch-response", "entry": answers})


def pending_attach(*, actor: Actor, person: Person) -> int:
    """Attach results waiting for ``person`` (same keyed hash, a sender serving their clinic).

    Called by ``guardians.services.person_register`` inside its transaction, so the results
    exist exactly when the registration does. Returns how many results were recorded.
    """
    from lookups.services import result_save

    waiting = (
        PendingLabResult.objects.select_for_update()
        .filter(id_number_hash=person.id_number_hash, sender__clinics=person.clinic)
        .select_related("sender", "report")
        .order_by("received_at")
    )
    recorded = 0
    for pending in waiting:
        payload = json.loads(crypto.decrypt(bytes(pending.payload_ciphertext)))
        results = [
            result_save(
                actor=actor,
                elder=person,
                kind=row["kind"],
                sampled_at=dt.datetime.fromisoformat(row["sampled_at"]),
                site=pending.sender.name[:200],
                lab=pending.sender.name[:200],
                result=row["result"],
                reported_at=dt.datetime.fromisoformat(row["reported_at"]),
                source="fhir_pending",
            )
            for row in payload["rows"]
        ]
        report = pending.report
        report.outcome = LabReport.Outcome.RECORDED
        report.clinic = person.clinic
        report.save(update_fields=["outcome", "clinic"])
        report.results.set(results)
        pending.delete()
        recorded += len(results)
    return recorded


# --- the desk queue: results waiting for a registration ---------------------------------------

DEFAULT_PENDING_RETENTION_DAYS = 30
DISCARD_REASON_MAX = 500


class PendingNotFound(Exception):
    """No such waiting result in a clinic where the user may handle results (answer 404)."""


class DiscardRefused(Exception):
    """The discard is not allowed (yet); ``str()`` is the message for the desk."""


def pending_retention() -> dt.timedelta:
    return dt.timedelta(
        days=int(getattr(settings, "KINGUARD_PENDING_RESULT_RETENTION_DAYS", DEFAULT_PENDING_RETENTION_DAYS))
    )


def pending_discard(*, actor: Actor, pending_id: int, reason: str, now: dt.datetime | None = None) -> None:
    """Discard a waiting result (nobody registered) with a typed reason, after the retention period.

    Only staff allowed to record results at the result's clinic; anyone else gets
    PendingNotFound (the same as a missing id). The ``LabReport`` row stays (outcome
    ``discarded``) so a redelivery of the same report stays a no-op. Audited with the reason,
    the sender and the test kinds, never the values or the ID number.
    """
    from guardians import permissions

    user = actor.user
    if user is None:
        raise PendingNotFound
    reason = " ".join((reason or "").split())
    now = now or timezone.now()
    with transaction.atomic():
        pending = (
            PendingLabResult.objects.select_for_update(of=("self",))
            .select_related("report", "sender", "clinic")
            .filter(pk=pending_id, clinic__in=permissions.staff_clinics(user, permissions.StaffAction.RECORD_RESULTS))
            .first()
        )
        if pending is None:
            raise PendingNotFound
        if len(reason) < 5:
            raise DiscardRefused(_("Type why this result is discarded (at least a few words)."))
        if len(reason) > DISCARD_REASON_MAX:
            raise DiscardRefused(_("The reason is too long (at most 500 characters)."))
        until = pending.received_at + pending_retention()
        if now < until:
            raise DiscardRefused(
                _("This result can be discarded from %(date)s (it is kept for the person's registration until then).")
                % {"date": timezone.localtime(until).strftime("%Y-%m-%d")}
            )
        report = pending.report
        report.outcome = LabReport.Outcome.DISCARDED
        report.save(update_fields=["outcome"])
        audit_record(
            actor=actor,
            action="fhir.pending_discarded",
            outcome="discarded",
            target=report,
            clinic=pending.clinic,
            details={
                "sender": pending.sender.name,
                "received_at": pending.received_at.isoformat(),
                "kinds": pending.kinds,
                "reason": reason,
            },
        )
        pending.delete()
