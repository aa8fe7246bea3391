"""ORU^R01 builders and ACK readers for the HL7 tests."""

from guardians import id_numbers
from lookups.fhir.services import DEFAULT_ID_SYSTEMS

KNOWN = id_numbers.make_valid("11010119400101123")
UNKNOWN = id_numbers.make_valid("11010119410101456")
AUTHORITY = DEFAULT_ID_SYSTEMS[0]
LAB_IP = "10.20.0.5"


def obx(n=1, code="94500-6^SARS-CoV-2 RNA^LN", value="260415000^Not detected^SCT", vtype="CWE", status="F", at=""):
    return f"OBX|{n}|{vtype}|{code}||{value}||||||{status}|||{at}"


def oru(
    *,
    filler="R-1",
    number=KNOWN,
    status="F",
    observations=None,
    control="MSG0001",
    facility="CITYLAB",
    clinic="",
    msg_type="ORU^R01^ORU_R01",
    version="2.5.1",
    processing="P",
    authority=AUTHORITY,
    extra="",
) -> bytes:
    """An ORU^R01 as a lab's LIS sends it (segments joined by CR)."""
    segments = [
        f"MSH|^~\\&|LIS|{facility}|KINGUARD|{clinic}|20261130120500+0800||{msg_type}|{control}|{processing}|{version}"
        "||||||UNICODE UTF-8",
        f"PID|1||{number}^^^&{authority}&URI^NNCHN~H12345^^^HOSP^MR||Wang^Fang||19400101|F",
        f"OBR|1||{filler}^CITYLAB|94500-6^SARS-CoV-2 RNA^LN|||20261130080000+0800|||||||||||||||"
        f"20261130120000+0800|||{status}",
        *(observations if observations is not None else [obx()]),
    ]
    if extra:
        segments.append(extra)
    return "\r".join(segments).encode()


def segments(ack: bytes) -> dict[str, list[list[str]]]:
    found: dict[str, list[list[str]]] = {}
    for seg in ack.decode().split("\r"):
        fields = seg.split("|")
        found.setdefault(fields[0], []).append(fields)
    return found


def ack_code(ack: bytes) -> str:
    return segments(ack)["MSA"][0][1]
