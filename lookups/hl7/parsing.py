"""HL7 v2 ORU^R01 → the FHIR delivery the ``/fhir/`` door writes (nothing here writes).

The message is parsed with python-hl7 and translated, one OBR group per report, into a FHIR
R4 ``transaction`` Bundle of DiagnosticReports with a contained Patient and Observations:
the same shape ``lookups.fhir.services.deliver_bundle`` takes, so matching, idempotency,
corrections, the pending queue, audit and notices are the FHIR path's, not a copy.

Invariants: every refusal is an ``Hl7Refused`` with an ACK code (``AE`` content, ``AR``
envelope), an HL7 table 0357 error code and an exact location (segment, occurrence, field,
component); ``where`` maps the FHIR expression of a shared-path refusal back to that location;
the ID number leaves this module only inside the Bundle handed to the shared path.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import hl7
from django.conf import settings

from lookups.fhir.services import CLINIC_SYSTEM, DEFAULT_ID_SYSTEMS, MAX_ENTRIES

LOINC = "http://loinc.org"
#: OBR-3 (filler order number) namespace → DiagnosticReport.identifier.system prefix.
FILLER_SYSTEM = "urn:kinguard:hl7v2:filler"
#: MSH-12 versions whose MSH/PID/OBR/OBX fields used here have the same meaning.
VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"})
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_SEGMENTS = 2000
MAX_OBX_PER_REPORT = 100
#: OBR-25 (result status, HL7 table 0123) → DiagnosticReport.status.
REPORT_STATUS = {"F": "final", "C": "corrected", "X": "entered-in-error"}
#: OBX-11 (observation result status, table 0085): F/C kept; W (wrong) and D (deleted) drop the
#: observation from a correction; X (cannot be obtained) with no OBR-25 withdraws the report.
OBX_KEEP = frozenset({"F", "C", "U"})
OBX_DROP = frozenset({"W", "D", "X"})
SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
#: Table 0357 texts for ERR-3.
ERROR_TEXT = {
    100: "Segment sequence error",
    101: "Required field missing",
    102: "Data type error",
    103: "Table value not found",
    200: "Unsupported message type",
    201: "Unsupported event code",
    202: "Unsupported processing id",
    203: "Unsupported version id",
    204: "Unknown key identifier",
    205: "Duplicate key identifier",
    206: "Application record locked",
    207: "Application internal error",
}


@dataclass(frozen=True)
class Where:
    """An ERR-2 location (ERL): segment ID, its occurrence in the message, field, component."""

    segment: str = "MSH"
    occurrence: int = 1
    field: int = 0
    component: int = 0

    def erl(self) -> str:
        parts = [self.segment, str(self.occurrence)]
        if self.field:
            parts.append(str(self.field))
            if self.component:
                parts += ["1", str(self.component)]
        return "^".join(parts)


@dataclass
class Problem:
    code: int  # HL7 table 0357
    text: str
    where: Where = field(default_factory=Where)
    app_code: str = ""  # the FHIR issue code when the shared path refused


class Hl7Refused(Exception):
    """Nothing was written. ``ack`` is AE (fix the content) or AR (envelope/sender/system)."""

    def __init__(self, ack: str, problems: list[Problem]):
        super().__init__("; ".join(p.text for p in problems))
        self.ack = ack
        self.problems = problems


def _refuse(ack: str, code: int, text: str, where: Where | None = None) -> Hl7Refused:
    return Hl7Refused(ack, [Problem(code, text, where or Where())])


@dataclass
class Header:
    """What the ACK needs from MSH (also on a refusal, as far as it could be read)."""

    control_id: str = ""
    sending_app: str = ""
    sending_facility: str = ""
    receiving_app: str = ""
    receiving_facility: str = ""
    version: str = "2.5.1"
    trigger: str = "R01"


@dataclass
class Parsed:
    header: Header
    bundle: dict[str, Any]
    #: Bundle entry n → its OBR location, its OBX locations (result[j]) and its PID location.
    groups: list[tuple[Where, list[Where], Where]]
    reports: int = 0
    observations: int = 0


def decode(raw: bytes) -> str:
    """Text of the message: UTF-8 (ASCII) unless MSH-18 says GB 18030; CR/LF line ends → CR."""
    first = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    fields = first.decode("latin-1").split(first[3:4].decode("latin-1") or "|")
    charset = fields[17].strip().upper() if len(fields) > 17 else ""
    codec = {"": "utf-8", "ASCII": "ascii", "UNICODE UTF-8": "utf-8", "GB 18030-2000": "gb18030"}.get(charset)
    if codec is None:
        raise _refuse(
            "AR", 102, f"Character set {charset[:30]!r} is not accepted (send UNICODE UTF-8).", Where(field=18)
        )
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        raise _refuse("AR", 102, f"The message is not valid {codec.upper()} text.", Where(field=18)) from None
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


def header_of(text: str) -> Header:
    """MSH as far as it can be read (for the ACK); never raises."""
    header = Header()
    if not text.startswith("MSH") or len(text) < 8:
        return header
    sep = text[3]
    fields = text.split("\r", 1)[0].split(sep)
    comp = text[4] if len(text) > 4 else "^"

    def f(n: int) -> str:  # MSH-n is fields[n - 1] (MSH-1 is the separator itself)
        return fields[n - 1][:180] if len(fields) > n - 1 else ""

    header.sending_app, header.sending_facility = f(3), f(4)
    header.receiving_app, header.receiving_facility = f(5), f(6)
    header.control_id = f(10)[:50]
    version = f(12).split(comp)[0]
    header.version = version if version in VERSIONS else "2.5.1"
    trigger = (f(9).split(comp) + ["", ""])[1]
    header.trigger = trigger if re.fullmatch(r"[A-Z0-9]{3}", trigger or "") else "R01"
    return header


def _get(seg: Any, f: int, r: int = 1, c: int = 1, s: int = 1) -> str:
    try:
        return str(seg.extract_field(1, f, r, c, s)).strip()
    except (IndexError, KeyError, TypeError, ValueError):
        return ""


def _reps(seg: Any, f: int) -> int:
    if f >= len(seg):
        return 0
    value = seg(f)
    return len(value) if value and isinstance(value[0], hl7.Repetition) else (1 if str(value) else 0)


_DTM = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d{1,4})?([+-]\d{4})?$")


def _offset(text: str) -> dt.tzinfo | None:
    m = re.search(r"([+-])(\d{2})(\d{2})$", text or "")
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return dt.timezone(dt.timedelta(minutes=minutes if m.group(1) == "+" else -minutes))


def _when(text: str, where: Where, default_tz: dt.tzinfo) -> str:
    """An HL7 DTM (at least to the minute) as an ISO date-time with its offset."""
    m = _DTM.match(text)
    if not m:
        raise _refuse("AE", 102, "A date and time YYYYMMDDHHMM[SS][+ZZZZ] is required.", where)
    year, month, day, hour, minute, second, _ = m.groups()
    tz = _offset(m.group(7) or "") or default_tz
    try:
        value = dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=tz)
    except ValueError:
        raise _refuse("AE", 102, "The date and time is not a real calendar time.", where) from None
    return value.isoformat()


def _codings(seg: Any, f: int) -> list[dict[str, str]]:
    """CWE/CE → FHIR codings: LN is LOINC; any other coding system name is kept as sent."""
    codings = []
    for base in (1, 4):  # identifier^text^system, then the alternate triplet
        code, display, system = (_get(seg, f, 1, base + k) for k in range(3))
        if code:
            coding = {"system": LOINC if system.upper() == "LN" else system or "urn:kinguard:hl7v2:local", "code": code}
            if display:
                coding["display"] = display[:200]
            codings.append(coding)
    return codings


def _value(seg: Any, where: Where) -> str:
    kind = _get(seg, 2).upper()
    parts = []
    for r in range(1, max(_reps(seg, 5), 1) + 1):
        if kind in ("CWE", "CE", "CNE", "CF"):
            parts.append(_get(seg, 5, r, 2) or _get(seg, 5, r, 1))
        else:
            parts.append(_get(seg, 5, r, 1))
    text = " ".join(p for p in parts if p)
    if not text:
        raise _refuse("AE", 101, "OBX-5 (the observation value) is empty.", Where(where.segment, where.occurrence, 5))
    if kind == "NM":
        unit = _get(seg, 6, 1, 1) or _get(seg, 6, 1, 2)
        text = f"{text} {unit}".strip()
    return text


def _patient(seg: Any, occurrence: int, id_systems: tuple[str, ...], clinic: str) -> dict[str, Any]:
    numbers = []
    for r in range(1, _reps(seg, 3) + 1):
        authority = {_get(seg, 3, r, 4, 1), _get(seg, 3, r, 4, 2)}
        matched = [s for s in id_systems if s in authority]
        if matched and _get(seg, 3, r, 1):
            numbers.append({"system": matched[0], "value": _get(seg, 3, r, 1)[:40]})
    if len(numbers) != 1:
        raise _refuse(
            "AE",
            101,
            f"PID-3 must hold exactly one resident ID number with assigning authority {id_systems[0]} (CX.4).",
            Where("PID", occurrence, 3, 4),
        )
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p", "identifier": numbers}
    if clinic:
        patient["managingOrganization"] = {"identifier": {"system": CLINIC_SYSTEM, "value": clinic}}
    return patient


def _status(obr: Any, obxs: list[Any], where: Where, locs: list[Where]) -> str:
    code = _get(obr, 25).upper()
    if code:
        if code not in REPORT_STATUS:
            raise _refuse(
                "AE",
                103,
                f"OBR-25 result status {code[:5]!r} is not accepted (F, C or X).",
                Where("OBR", where.occurrence, 25),
            )
        return REPORT_STATUS[code]
    codes = [_get(o, 11).upper() for o in obxs]
    for c, loc in zip(codes, locs, strict=True):
        if c not in OBX_KEEP | OBX_DROP:
            raise _refuse(
                "AE",
                103,
                f"OBX-11 result status {c[:5]!r} is not accepted (F, C, W, D or X); only final results are delivered.",
                Where("OBX", loc.occurrence, 11),
            )
    if codes and all(c in OBX_DROP for c in codes):
        return "entered-in-error"
    return "corrected" if "C" in codes else "final"


def parse(text: str) -> Parsed:
    """The ORU^R01 in ``text`` as a FHIR transaction Bundle, or Hl7Refused (AE/AR)."""
    header = header_of(text)
    if not text.startswith("MSH") or len(text) < 8 or text[3] != "|":
        raise _refuse("AR", 100, "The message must begin with an MSH segment (field separator |).", Where(field=1))
    segments = [s for s in text.split("\r") if s]
    if len(segments) > MAX_SEGMENTS:
        raise _refuse("AR", 100, f"The message holds more than {MAX_SEGMENTS} segments.", Where())
    try:
        message = hl7.parse("\r".join(segments))
    except Exception:  # python-hl7 raises various errors on garbled input  # noqa: BLE001
        raise _refuse("AR", 100, "The message cannot be parsed as HL7 v2.", Where()) from None
    msh = message.segment("MSH")
    if (_get(msh, 9, 1, 1), _get(msh, 9, 1, 2)) != ("ORU", "R01"):
        kind = f"{_get(msh, 9, 1, 1)}^{_get(msh, 9, 1, 2)}"[:20]
        code = 200 if _get(msh, 9, 1, 1) != "ORU" else 201
        raise _refuse("AR", code, f"Message type {kind!r} is not accepted; send ORU^R01.", Where(field=9))
    if not header.control_id:
        raise _refuse("AR", 101, "MSH-10 (message control ID) is required.", Where(field=10))
    processing = _get(msh, 11, 1, 1)
    accepted = getattr(settings, "KINGUARD_HL7_PROCESSING_ID", "P")
    if processing != accepted:
        raise _refuse(
            "AR", 202, f"Processing ID {processing[:3]!r} is not accepted here (send {accepted}).", Where(field=11)
        )
    if _get(msh, 12, 1, 1) not in VERSIONS:
        raise _refuse(
            "AR", 203, f"HL7 version {_get(msh, 12, 1, 1)[:10]!r} is not accepted (2.3 to 2.8).", Where(field=12)
        )
    local = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    default_tz = _offset(_get(msh, 7)) or local
    clinic = _get(msh, 6, 1, 1)
    clinic = clinic if clinic.isdigit() else ""
    id_systems = tuple(getattr(settings, "KINGUARD_FHIR_ID_SYSTEMS", DEFAULT_ID_SYSTEMS))

    counts: dict[str, int] = {"MSH": 1}
    pid: tuple[Any, Where] | None = None
    groups: list[tuple[Any, Where, tuple[Any, Where], list[tuple[Any, Where]]]] = []
    for seg in message[1:]:
        name = str(seg[0])
        counts[name] = counts.get(name, 0) + 1
        loc = Where(name, counts[name])
        if not SEGMENT_ID.match(name):
            raise _refuse("AE", 100, f"Segment {name[:10]!r} is not an HL7 segment.", loc)
        if name == "MSH":
            raise _refuse("AE", 100, "One message per MLLP block (a second MSH was found).", loc)
        if name == "PID":
            pid = (seg, loc)
        elif name == "OBR":
            if pid is None:
                raise _refuse("AE", 100, "An OBR must follow the PID of its patient.", loc)
            groups.append((seg, loc, pid, []))
        elif name == "OBX":
            if not groups:
                raise _refuse("AE", 100, "An OBX must follow its OBR.", loc)
            groups[-1][3].append((seg, loc))
            if len(groups[-1][3]) > MAX_OBX_PER_REPORT:
                raise _refuse("AE", 100, f"An OBR may carry at most {MAX_OBX_PER_REPORT} OBX segments.", loc)
        # SFT, PD1, NTE, NK1, PV1, PV2, ORC, TQ1, SPM, DSC, Z-segments…: not needed, ignored.
    if not groups:
        raise _refuse("AE", 101, "The message carries no OBR (report).", Where())
    if len(groups) > MAX_ENTRIES:
        raise _refuse("AE", 100, f"A message may carry at most {MAX_ENTRIES} reports (OBR).", Where())

    entries, mapped = [], []
    observations = 0
    for n, (obr, oloc, (pid_seg, ploc), obxs) in enumerate(groups):
        filler = _get(obr, 3, 1, 1)
        if not filler:
            raise _refuse(
                "AE", 101, "OBR-3 (the laboratory's filler order number) is required.", Where("OBR", oloc.occurrence, 3)
            )
        namespace = _get(obr, 3, 1, 2)
        status = _status(obr, [s for s, _ in obxs], oloc, [w for _, w in obxs])
        patient = _patient(pid_seg, ploc.occurrence, id_systems, clinic)
        report: dict[str, Any] = {
            "resourceType": "DiagnosticReport",
            "identifier": [
                {"system": f"{FILLER_SYSTEM}:{namespace}" if namespace else FILLER_SYSTEM, "value": filler[:200]}
            ],
            "status": status,
            "code": {"coding": _codings(obr, 4)} if _codings(obr, 4) else {"text": "laboratory report"},
            "subject": {"reference": "#p"},
            "contained": [patient],
            "result": [],
        }
        if _get(obr, 7):
            report["effectiveDateTime"] = _when(_get(obr, 7), Where("OBR", oloc.occurrence, 7), default_tz)
        if _get(obr, 22):
            report["issued"] = _when(_get(obr, 22), Where("OBR", oloc.occurrence, 22), default_tz)
        kept: list[Where] = []
        for seg, loc in obxs if status != "entered-in-error" else []:
            if _get(seg, 11).upper() in OBX_DROP:
                continue  # W/D: this observation is not part of the current version
            codings = _codings(seg, 3)
            if not codings:
                raise _refuse("AE", 101, "OBX-3 (the observation code) is required.", Where("OBX", loc.occurrence, 3))
            obs: dict[str, Any] = {
                "resourceType": "Observation",
                "id": f"o{len(kept) + 1}",
                "status": "corrected" if status == "corrected" else "final",
                "code": {"coding": codings},
                "valueString": _value(seg, loc),
            }
            when = _get(seg, 14) or _get(obr, 7)
            if not when:
                raise _refuse(
                    "AE",
                    101,
                    "When the sample was taken is required (OBX-14 or OBR-7).",
                    Where("OBX", loc.occurrence, 14),
                )
            obs["effectiveDateTime"] = _when(when, Where("OBX", loc.occurrence, 14 if _get(seg, 14) else 0), default_tz)
            report["contained"].append(obs)
            report["result"].append({"reference": f"#{obs['id']}"})
            kept.append(loc)
        if status != "entered-in-error" and not kept:
            raise _refuse("AE", 101, "The report (OBR) carries no final observation (OBX).", oloc)
        observations += len(kept)
        entries.append(
            {
                "fullUrl": f"urn:uuid:hl7-{n}",
                "resource": report,
                "request": {"method": "POST", "url": "DiagnosticReport"},
            }
        )
        mapped.append((oloc, kept, ploc))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return Parsed(header, bundle, mapped, reports=len(entries), observations=observations)


# --- a shared-path refusal (FHIR expression) → HL7 location ---------------------------------

_ENTRY = re.compile(r"^Bundle\.entry\[(\d+)\]\.resource(?:\.(.*))?$")
_RESULT = re.compile(r"^result\[(\d+)\](?:\.(\w+))?")
#: FHIR issue type → table 0357.
ISSUE_CODE = {
    "required": 101,
    "value": 102,
    "invalid": 102,
    "too-long": 102,
    "structure": 102,
    "code-invalid": 103,
    "not-supported": 103,
    "not-found": 204,
    "duplicate": 205,
    "business-rule": 207,
    "forbidden": 207,
    "too-costly": 100,
}


def where(parsed: Parsed, expression: str) -> Where:
    """The HL7 location of a FHIR expression in the Bundle ``parse`` built."""
    expression = expression or ""
    if expression.startswith("DiagnosticReport.") and len(parsed.groups) == 1:
        # a correction refused while writing names no Bundle entry: with one report it is that one
        expression = "Bundle.entry[0].resource." + expression.removeprefix("DiagnosticReport.")
    m = _ENTRY.match(expression)
    if not m or int(m.group(1)) >= len(parsed.groups):
        return Where()
    obr, obxs, pid = parsed.groups[int(m.group(1))]
    rest = m.group(2) or ""
    r = _RESULT.match(rest)
    if r:
        j = int(r.group(1))
        if j >= len(obxs):
            return obr
        field_of = {"code": 3, "effectiveDateTime": 14}
        return Where("OBX", obxs[j].occurrence, field_of.get(r.group(2) or "", 5))
    if rest.startswith("subject.managingOrganization"):
        return Where(field=6)
    if rest.startswith("subject"):
        return Where("PID", pid.occurrence, 3)
    field_of = {"identifier": 3, "status": 25, "issued": 22, "effectiveDateTime": 7}
    return Where("OBR", obr.occurrence, field_of.get(rest.split(".")[0], 0))
