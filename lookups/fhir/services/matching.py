"""Writing a new report: match the person by keyed hash in the sender's clinics, or queue it.

Invariants: a person is never created; unmatched results wait encrypted in
``PendingLabResult``; the caller holds the transaction (``delivery``) so a Bundle is all or
nothing; the lab's report identifier makes a redelivery a no-op (``UNCHANGED``).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction

from guardians import crypto
from guardians.models import Person
from lookups.audit import Actor

from ..models import LabReport, LabSender, PendingLabResult
from ..parsing import _Report

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


def _write_new(sender: LabSender, actor: Actor, report: _Report) -> str:
    from lookups.services import result_save

    if LabReport.objects.filter(sender=sender, identifier=report.identifier).exists():
        return UNCHANGED
    person = Person.objects.filter(id_number_hash=report.id_hash, clinic__in=list(sender.clinics.all())).first()
    try:
        with transaction.atomic():
            row = LabReport.objects.create(
                sender=sender,
                identifier=report.identifier,
                status=report.status,
                outcome=LabReport.Outcome.RECORDED if person else LabReport.Outcome.PENDING,
                clinic=person.clinic if person else report.clinic,
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
            clinic=report.clinic,
            report=row,
            id_number_hash=report.id_hash,
            id_number_masked=report.id_masked,
            kinds=",".join(dict.fromkeys(r.kind for r in report.rows))[:200],
            payload_ciphertext=crypto.encrypt(json.dumps(_rows_payload(report)).encode()),
        )
    return CREATED
