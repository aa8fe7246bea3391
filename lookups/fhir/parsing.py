"""Parsing and validation of a laboratory delivery (FHIR R4): nothing here writes.

Invariants: every refusal is a ``DeliveryRefused`` with precise ``Issue``s (FHIR issue-type
code, text, location) and never names a person; the ID number leaves this module only as its
keyed hash.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime
from pydantic import ValidationError

from guardians import crypto, id_numbers
from guardians.models import Clinic

from .models import LabCodeMap, LabSender

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
#: ``final`` records a new report; ``amended``/``corrected`` replace a report delivered earlier
#: under the same identifier; ``entered-in-error`` withdraws it.
CORRECTION_STATUSES = frozenset({"amended", "corrected"})
WITHDRAWN_STATUS = "entered-in-error"
ACCEPTED_STATUSES = frozenset({"final", WITHDRAWN_STATUS, *CORRECTION_STATUSES})


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
    clinic: Clinic | None
    rows: list[_Row]
    entries: list[int] = field(default_factory=list)
    id_masked: str = ""


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

    def patient(self, patient: dict[str, Any], where: str) -> tuple[str, str, Clinic]:
        """The keyed hash of the patient's ID number, its masked form, and the result's clinic."""
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
        return crypto.keyed_hash(number), id_numbers.mask(number), self._clinic(patient, where)

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
            422,
            [
                Issue(
                    "not-supported",
                    f"Status {status!r} is not accepted; send final, amended, corrected or entered-in-error.",
                    f"{where}.status",
                )
            ],
        )
    if status == WITHDRAWN_STATUS:  # only the identifier matters: the report is withdrawn
        return _Report(identifier, status, "", None, [])
    # References are strings ("#id"): only contained resources with a string id can be named.
    contained: dict[str, dict[str, Any]] = {
        c["id"]: c
        for c in report.get("contained", [])
        if isinstance(c, dict) and c.get("id") and isinstance(c["id"], str)
    }
    subject = _ref_id(report.get("subject"))
    if not subject:
        raise DeliveryRefused(
            422, [Issue("required", "The report's subject must reference a Patient.", f"{where}.subject")]
        )
    patient = ctx.resolve(subject, contained, f"{where}.subject", "Patient")
    id_hash, id_masked, clinic = ctx.patient(patient, f"{where}.subject")
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
    return _Report(identifier, status, id_hash, clinic, rows, id_masked=id_masked)


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
