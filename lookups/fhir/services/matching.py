"""Writing a new report: match the person by keyed hash in the sender's clinics, or queue it.

Invariants: a person is never created; unmatched results wait encrypted in
``PendingLabResult``; the caller holds the transaction (``delivery``) so a Bundle is all or
nothing; the lab's report identifier makes a redelivery a no-op (``UNCHANGED``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction

from guardians import crypto
from guardians.models import Person
from lookups.audit import Actor, AuditEntry, audit_record_many
from lookups.models import TestResult

from ..models import LabReport, LabSender, PendingLabResult
from ..parsing import DeliveryRefused, Issue, _Report, _Row

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


@dataclass
class Writes:
    """What one delivery (or one batch entry) writes: the people matched up front, the audit
    events collected on the way and appended at the end with one chain-head lock."""

    sender: LabSender
    actor: Actor
    people: dict[str, Person]
    events: list[AuditEntry] = field(default_factory=list)
    #: Run after the events are appended, in the same transaction (elder notices).
    after: list[Callable[[], object]] = field(default_factory=list)

    def flush(self) -> None:
        """Append the collected events, then run ``after`` (call last, inside the transaction
        they describe, so a notice exists exactly when its correction does)."""
        audit_record_many(self.actor, self.events)
        self.events = []
        for step in self.after:
            step()
        self.after = []


def people_for(clinic_ids: Iterable[int], reports: Iterable[_Report]) -> dict[str, Person]:
    """One query: the registered people of the sender's clinics whose keyed hash is reported."""
    hashes = {r.id_hash for r in reports if r.id_hash}
    found: dict[str, Person] = {}
    if hashes:
        people = Person.objects.filter(id_number_hash__in=hashes, clinic_id__in=list(clinic_ids))
        for person in people.select_related("clinic").order_by("pk"):
            found.setdefault(person.id_number_hash, person)
    return found


def record_results(writes: Writes, elder: Person, rows: list[_Row], source: str) -> list[TestResult]:
    """The rows as the elder's results, one INSERT; each with its ``result.recorded`` event
    (the same event ``lookups.services.result_save`` writes), appended by ``writes.flush``."""
    name = writes.sender.name[:200]
    records = TestResult.objects.bulk_create(
        [
            TestResult(
                clinic=elder.clinic,
                elder=elder,
                kind=r.kind,
                sampled_at=r.sampled_at,
                site=name,
                lab=name,
                result=r.result,
                reported_at=r.reported_at,
            )
            for r in rows
        ]
    )
    writes.events.extend(
        AuditEntry(
            action="result.recorded",
            outcome="ok",
            subject=elder,
            target=record,
            clinic=elder.clinic,
            details={"kind": record.kind, "with_photo": False, "source": source},
        )
        for record in records
    )
    return records


def link_results(report: LabReport, records: list[TestResult]) -> None:
    through = LabReport.results.through
    through.objects.bulk_create([through(labreport_id=report.pk, testresult_id=r.pk) for r in records])


def _write_new(writes: Writes, report: _Report) -> str:
    person = writes.people.get(report.id_hash)
    clinic = report.clinic
    if clinic is None:  # not reached: only a withdrawal (entered-in-error) carries no clinic
        raise DeliveryRefused(422, [Issue("required", "The report names no clinic.", "DiagnosticReport.subject")])
    try:
        with transaction.atomic():  # a redelivery (or a concurrent one) hits the unique constraint
            row = LabReport.objects.create(
                sender=writes.sender,
                identifier=report.identifier,
                status=report.status,
                outcome=LabReport.Outcome.RECORDED if person else LabReport.Outcome.PENDING,
                clinic=person.clinic if person else clinic,
                content_digest=_digest(report),
            )
    except IntegrityError:
        return UNCHANGED
    if person is not None:
        link_results(row, record_results(writes, person, report.rows, "fhir"))
    else:
        PendingLabResult.objects.create(
            sender=writes.sender,
            clinic=clinic,
            report=row,
            id_number_hash=report.id_hash,
            id_number_masked=report.id_masked,
            kinds=",".join(dict.fromkeys(r.kind for r in report.rows))[:200],
            payload_ciphertext=crypto.encrypt(json.dumps(_rows_payload(report)).encode()),
        )
    return CREATED
