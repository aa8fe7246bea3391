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
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from pydantic import ValidationError

from guardians import crypto, id_numbers
from guardians.models import Clinic, Person
from lookups.audit import Actor, audit_record

from .models import LabCodeMap, LabReport, LabSender, PendingLabResult

LOINC = "http://loinc.org"
#: Identifier systems accepted for the resident ID number (GB 11643) in Patient.identifier.
DEFAULT_ID_SYSTEMS = ("https://kinguard.org/fhir/sid/cn-resident-id",)
#: Identifier system naming a Kinguard clinic (value = clinic id) in Patient.managingOrganization.
CLINIC_SYSTEM = "https://kinguard.org/fhir/sid/clinic"

MAX_BODY_BYTES = 1024 * 1024
MAX_ENTRIES = 200
MAX_RESULT_CHARS = 200
CLOCK_SKEW = dt.timedelta(minutes=5)

#: Built-in LOINC codes → Kinguard test kinds; labs' local codes go in LabCodeMap (admin).
LOINC_KINDS: dict[str, str] = {
    "94500-6": "nucleic_acid",  # SARS-CoV-2 RNA [Presence] in Respiratory specimen by NAA with probe
    "94309-2": "nucleic_acid",  # SARS-CoV-2 RNA [Presence] in Specimen by NAA with probe
    "94533-7": "nucleic_acid",  # SARS-CoV-2 N gene [Presence] in Respiratory specimen by NAA
    "94759-8": "nucleic_acid",  # SARS-CoV-2 RNA [Presence] in Nasopharynx by NAA with probe
    "94558-4": "antigen",  # SARS-CoV-2 Ag [Presence] in Respiratory specimen by Rapid immunoassay
    "97097-0": "antigen",  # SARS-CoV-2 Ag [Presence] in Upper respiratory specimen by Rapid IA
    "94563-4": "antibody",  # SARS-CoV-2 IgG Ab [Presence] in Serum or Plasma by Immunoassay
    "94564-2": "antibody",  # SARS-CoV-2 IgM Ab [Presence] in Serum or Plasma by Immunoassay
    "94762-2": "antibody",  # SARS-CoV-2 Ab [Presence] in Serum or Plasma by Immunoassay
    "58410-2": "blood",  # CBC panel - Blood by Automated count
    "718-7": "blood",  # Hemoglobin [Mass/volume] in Blood
    "6690-2": "blood",  # Leukocytes [#/volume] in Blood by Automated count
    "777-3": "blood",  # Platelets [#/volume] in Blood by Automated count
    "2345-7": "blood",  # Glucose [Mass/volume] in Serum or Plasma
    "4548-4": "blood",  # Hemoglobin A1c/Hemoglobin.total in Blood
}
ACCEPTED_STATUSES = frozenset({"final"})


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: FHIR issue-type ``code``, text, FHIRPath-ish location."""

    code: str
    diagnostics: str
    expression: str = ""
    severity: str = "error"

    def as_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


class DeliveryRefused(Exception):
    """Nothing was written. ``status`` is the HTTP status, ``issues`` say precisely why."""

    def __init__(self, status: int, issues: list[Issue]):
        super().__init__("; ".join(i.diagnostics for i in issues))
        self.status = status
        self.issues = issues


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in issues]}


@dataclass
class _Row:
    kind: str
    code: str
    sampled_at: dt.datetime
    reported_at: dt.datetime
    result: str


@dataclass
class _Report:
    """One DiagnosticReport ready to write; ``entries`` are the Bundle entries it came from."""

    identifier: str
    status: str
    id_hash: str
    clinic: Clinic
    rows: list[_Row]
    entries: list[int] = field(default_factory=list)


# --- parsing --------------------------------------------------------------------------------


def parse_json(body: bytes) -> dict[str, Any]:
    """The JSON object in ``body``, or DeliveryRefused(400)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DeliveryRefused(400, [Issue("structure", "The body is not valid UTF-8 JSON.")]) from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
        raise DeliveryRefused(
            400, [Issue("structure", "The body must be a FHIR resource (a JSON object with resourceType).")]
        )
    return data


def _validation_issues(exc: ValidationError, prefix: str) -> list[Issue]:
    issues = []
    for error in exc.errors(include_input=False, include_url=False)[:20]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        issues.append(
            Issue("invalid", str(error.get("msg", "invalid"))[:300], f"{prefix}.{where}" if where else prefix)
        )
    return issues or [Issue("invalid", "The resource does not conform to FHIR R4.", prefix)]


def _validate(model, data: dict[str, Any], prefix: str) -> None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise DeliveryRefused(400, _validation_issues(exc, prefix)) from None
    except (ValueError, TypeError, KeyError, AttributeError):
        raise DeliveryRefused(400, [Issue("invalid", "The resource does not conform to FHIR R4.", prefix)]) from None


def _aware(value: Any, where: str) -> dt.datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise DeliveryRefused(422, [Issue("value", "A full date and time with a time zone is required.", where)])
    return parsed


def _ref_id(reference: Any) -> str:
    return reference.get("reference", "") if isinstance(reference, dict) else ""


class _Context:
    """What a delivery needs to resolve: the sender's clinics, code maps, bundle resources."""

    def __init__(self, sender: LabSender, by_full_url: dict[str, dict[str, Any]]):
        self.sender = sender
        self.clinics = {c.pk: c for c in sender.clinics.all()}
        maps = LabCodeMap.objects.filter(sender__isnull=True) | LabCodeMap.objects.filter(sender=sender)
        self.codes: dict[tuple[str, str], str] = {}
        for m in sorted(maps, key=lambda m: m.sender_id is not None):  # sender's own maps win
            self.codes[(m.system, m.code)] = m.kind
        self.by_full_url = by_full_url
        self.id_systems = tuple(getattr(settings, "KINGUARD_FHIR_ID_SYSTEMS", DEFAULT_ID_SYSTEMS))

    def resolve(self, reference: str, contained: dict[str, dict[str, Any]], where: str, rtype: str) -> dict[str, Any]:
        if reference.startswith("#") and reference[1:] in contained:
            found = contained[reference[1:]]
        elif reference in self.by_full_url:
            found = self.by_full_url[reference]
        else:
            raise DeliveryRefused(
                422,
                [
                    Issue(
                        "not-found",
                        f"The reference {reference[:80]!r} is not in this delivery (contained or bundle fullUrl).",
                        where,
                    )
                ],
            )
        if found.get("resourceType") != rtype:
            raise DeliveryRefused(422, [Issue("invalid", f"The reference must point to a {rtype}.", where)])
        return found

    def kind_of(self, code: Any, where: str) -> tuple[str, str]:
        codings = code.get("coding", []) if isinstance(code, dict) else []
        for coding in codings:
            system, value = coding.get("system", ""), coding.get("code", "")
            if (system, value) in self.codes:
                return self.codes[(system, value)], f"{system}|{value}"
            if system == LOINC and value in LOINC_KINDS:
                return LOINC_KINDS[value], f"{system}|{value}"
        shown = ", ".join(f"{c.get('system', '')}|{c.get('code', '')}" for c in codings)[:200]
        raise DeliveryRefused(
            422,
            [
                Issue(
                    "code-invalid",
                    f"No Kinguard test kind is mapped to {shown or 'an empty code'} (LOINC or the lab's code table).",
                    where,
                )
            ],
        )

    def patient(self, patient: dict[str, Any], where: str) -> tuple[str, Clinic]:
        """The keyed hash of the patient's ID number, and the clinic the result belongs to."""
        numbers = [
            i.get("value", "")
            for i in patient.get("identifier", [])
            if isinstance(i, dict) and i.get("system") in self.id_systems
        ]
        if len(numbers) != 1:
            raise DeliveryRefused(
                422,
                [
                    Issue(
                        "required",
                        f"Exactly one identifier with system {self.id_systems[0]} (resident ID number) is required.",
                        f"{where}.identifier",
                    )
                ],
            )
        try:
            number, _ = id_numbers.validate(numbers[0])
        except id_numbers.InvalidIdNumber as exc:
            raise DeliveryRefused(422, [Issue("value", str(exc), f"{where}.identifier")]) from None
        return crypto.keyed_hash(number), self._clinic(patient, where)

    def _clinic(self, patient: dict[str, Any], where: str) -> Clinic:
        org = patient.get("managingOrganization") or {}
        ident = org.get("identifier") if isinstance(org, dict) else None
        if isinstance(ident, dict) and ident.get("system") == CLINIC_SYSTEM:
            value = str(ident.get("value", ""))
            clinic = self.clinics.get(int(value)) if value.isdigit() else None
            if clinic is None:
                raise DeliveryRefused(
                    403,
                    [Issue("forbidden", "This sender does not serve that clinic.", f"{where}.managingOrganization")],
                )
            return clinic
        if len(self.clinics) == 1:
            return next(iter(self.clinics.values()))
        raise DeliveryRefused(
            422,
            [
                Issue(
                    "required",
                    f"Several clinics are served: name one in managingOrganization.identifier ({CLINIC_SYSTEM}).",
                    f"{where}.managingOrganization",
                )
            ],
        )


def _report(ctx: _Context, report: dict[str, Any], where: str, now: dt.datetime) -> _Report:
    """Check one DiagnosticReport (already valid FHIR) and extract what Kinguard records."""
    identifiers = [i for i in report.get("identifier", []) if isinstance(i, dict) and i.get("value")]
    if not identifiers:
        raise DeliveryRefused(
            422,
            [
                Issue(
                    "required",
                    "The lab's report identifier is required (it makes redelivery safe).",
                    f"{where}.identifier",
                )
            ],
        )
    identifier = f"{identifiers[0].get('system', '')}|{identifiers[0]['value']}"[:300]
    status = report.get("status", "")
    if status not in ACCEPTED_STATUSES:
        raise DeliveryRefused(
            422, [Issue("not-supported", f"Status {status!r} is not accepted; send final results.", f"{where}.status")]
        )
    contained = {c.get("id"): c for c in report.get("contained", []) if isinstance(c, dict) and c.get("id")}
    subject = _ref_id(report.get("subject"))
    if not subject:
        raise DeliveryRefused(
            422, [Issue("required", "The report's subject must reference a Patient.", f"{where}.subject")]
        )
    patient = ctx.resolve(subject, contained, f"{where}.subject", "Patient")
    id_hash, clinic = ctx.patient(patient, f"{where}.subject")
    references = [_ref_id(r) for r in report.get("result", [])]
    if not references:
        raise DeliveryRefused(
            422, [Issue("required", "The report carries no Observation in result.", f"{where}.result")]
        )
    reported_at = _aware(report["issued"], f"{where}.issued") if report.get("issued") else now
    if reported_at > now + CLOCK_SKEW:
        raise DeliveryRefused(422, [Issue("value", "The report is issued in the future.", f"{where}.issued")])
    rows = []
    for n, reference in enumerate(references):
        at = f"{where}.result[{n}]"
        obs = ctx.resolve(reference, contained, at, "Observation")
        kind, code = ctx.kind_of(obs.get("code"), f"{at}.code")
        when = obs.get("effectiveDateTime") or report.get("effectiveDateTime")
        if not when:
            raise DeliveryRefused(
                422, [Issue("required", "When the sample was taken (effectiveDateTime) is required.", at)]
            )
        sampled_at = _aware(when, f"{at}.effectiveDateTime")
        if sampled_at > reported_at:
            raise DeliveryRefused(422, [Issue("value", "The sample is taken after the report was issued.", at)])
        rows.append(_Row(kind, code, sampled_at, reported_at, _value(obs, at)))
    return _Report(identifier, status, id_hash, clinic, rows)


def _value(obs: dict[str, Any], where: str) -> str:
    if "valueQuantity" in obs:
        q = obs["valueQuantity"]
        text = f"{q.get('value', '')} {q.get('unit') or q.get('code') or ''}".strip()
    elif "valueString" in obs:
        text = str(obs["valueString"])
    elif "valueCodeableConcept" in obs:
        cc = obs["valueCodeableConcept"]
        codings = cc.get("coding") or [{}]
        text = cc.get("text") or codings[0].get("display") or codings[0].get("code") or ""
    else:
        text = ""
    text = text.strip()
    if not text:
        raise DeliveryRefused(
            422, [Issue("required", "A value (valueQuantity, valueString or valueCodeableConcept) is required.", where)]
        )
    if len(text) > MAX_RESULT_CHARS:
        raise DeliveryRefused(
            422, [Issue("too-long", f"The value is longer than {MAX_RESULT_CHARS} characters.", where)]
        )
    return text


# --- writing --------------------------------------------------------------------------------


def _write(sender: LabSender, actor: Actor, report: _Report) -> bool:
    """Record or queue one report; False when the lab already delivered this identifier."""
    from lookups.services import result_save

    if LabReport.objects.filter(sender=sender, identifier=report.identifier).exists():
        return False
    person = Person.objects.filter(id_number_hash=report.id_hash, clinic__in=list(sender.clinics.all())).first()
    try:
        with transaction.atomic():
            row = LabReport.objects.create(
                sender=sender,
                identifier=report.identifier,
                status=report.status,
                outcome=LabReport.Outcome.RECORDED if person else LabReport.Outcome.PENDING,
                clinic=person.clinic if person else report.clinic,
            )
    except IntegrityError:  # a concurrent redelivery won the race
        return False
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
        payload = {
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
        PendingLabResult.objects.create(
            sender=sender,
            clinic=report.clinic,
            report=row,
            id_number_hash=report.id_hash,
            payload_ciphertext=crypto.encrypt(json.dumps(payload).encode()),
        )
    return True


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
    with transaction.atomic():
        created = _write(sender, actor, report)
        _audit_accepted(
            actor,
            sender,
            kind="DiagnosticReport",
            counts={"reports": 1, "new": int(created), "observations": len(report.rows)},
        )
    text = "Report accepted." if created else "Report already received; nothing changed."
    return Delivered(201 if created else 200, operation_outcome([Issue("informational", text, severity="information")]))


def deliver_bundle(*, sender: LabSender, actor: Actor, data: dict[str, Any]) -> Delivered:
    """``POST /fhir/``: a transaction (all or nothing) or batch (entry by entry) Bundle."""
    entries = data.get("entry") if isinstance(data.get("entry"), list) else []
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
        new = 0
        for report in reports:
            created = _write(sender, actor, report)
            new += created
            status_of[report.entries[0]] = "201 Created" if created else "200 OK"
        _audit_accepted(
            actor,
            sender,
            kind="Bundle/transaction",
            counts={
                "reports": len(reports),
                "new": new,
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
    counts = {"reports": 0, "new": 0, "refused": 0, "entries": len(entries)}
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
                created = _write(sender, actor, report)
            counts["reports"] += 1
            counts["new"] += created
            answers.append({"response": {"status": "201 Created" if created else "200 OK"}})
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
        payload = json.loads(crypto.decrypt(pending.payload_ciphertext))
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
