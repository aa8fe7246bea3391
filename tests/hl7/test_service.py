"""ORU^R01 through the shared delivery: ACK codes, ERR locations, idempotency, corrections,
pending queue, unknown senders, limits; every refusal leaves nothing written."""

import pytest

from lookups.fhir import tokens
from lookups.fhir.models import LabCodeMap, LabReport, LabReportVersion, PendingLabResult
from lookups.hl7 import peers as peer_config
from lookups.hl7.parsing import MAX_MESSAGE_BYTES, MAX_SEGMENTS
from lookups.hl7.service import handle
from lookups.models import AuditEvent, TestResult

from .messages import KNOWN, LAB_IP, UNKNOWN, ack_code, obx, oru, segments

pytestmark = pytest.mark.django_db


def send(peers, message, ip=LAB_IP):
    return handle(message, peers=peers, ip=ip)


def err(ack):
    """(ERR-2 location, ERR-3 code) of the first ERR."""
    fields = segments(ack)["ERR"][0]
    return fields[2], fields[3].split("^")[0]


def nothing_written():
    return not LabReport.objects.exists() and not TestResult.objects.exists() and not PendingLabResult.objects.exists()


def test_final_report_recorded_for_registered_person(peers, elder):
    answer = send(peers, oru())
    msa = segments(answer)["MSA"][0]
    assert msa[1:3] == ["AA", "MSG0001"]
    assert "ERR" not in segments(answer)
    msh = segments(answer)["MSH"][0]
    assert msh[8] == "ACK^R01^ACK" and msh[4] == "LIS" and msh[5] == "CITYLAB"
    result = TestResult.objects.get(elder=elder)
    assert (result.kind, result.result, result.lab) == ("nucleic_acid", "Not detected", "City Lab")
    assert result.sampled_at.isoformat() == "2026-11-30T00:00:00+00:00"
    report = LabReport.objects.get()
    assert report.identifier == "urn:kinguard:hl7v2:filler:CITYLAB|R-1" and report.status == "final"
    accepted = AuditEvent.objects.get(action="fhir.delivery_accepted")
    assert accepted.details["delivery"] == "HL7v2/ORU^R01" and accepted.details["new"] == 1
    assert "Not detected" not in str(accepted.details) and KNOWN not in str(accepted.details)


def test_numeric_and_local_codes(peers, elder, lab):
    LabCodeMap.objects.create(sender=lab, system="99CLB", code="HB", kind="blood")
    message = oru(observations=[obx(1, "HB^Haemoglobin^99CLB", "13.5", "NM") + "", obx(2)])
    message = message.replace(b"||13.5||", b"||13.5|g/dL^^UCUM|")
    assert ack_code(send(peers, message)) == "AA"
    assert sorted(TestResult.objects.values_list("kind", "result")) == [
        ("blood", "13.5 g/dL"),
        ("nucleic_acid", "Not detected"),
    ]


def test_redelivery_is_a_no_op(peers, elder):
    assert ack_code(send(peers, oru())) == "AA"
    assert ack_code(send(peers, oru(control="MSG0002"))) == "AA"
    assert TestResult.objects.count() == 1 and LabReport.objects.count() == 1


def test_correction_replaces_values_and_keeps_earlier_version(peers, elder):
    send(peers, oru())
    corrected = oru(status="C", control="MSG0002", observations=[obx(value="10828004^Detected^SCT", status="C")])
    answer = send(peers, corrected)
    assert ack_code(answer) == "AA"
    assert TestResult.objects.get(elder=elder).result == "Detected"
    report = LabReport.objects.get()
    assert (report.version, report.status) == (2, "corrected")
    assert LabReportVersion.objects.filter(report=report, version=1).exists()
    assert AuditEvent.objects.filter(action="fhir.report_corrected").count() == 1


def test_withdrawal_x(peers, elder):
    send(peers, oru())
    assert ack_code(send(peers, oru(status="X", control="MSG0002", observations=[]))) == "AA"
    assert not TestResult.objects.exists()
    assert LabReport.objects.get().outcome == LabReport.Outcome.WITHDRAWN


def test_correction_of_unknown_report_is_ae_204(peers, elder):
    answer = send(peers, oru(status="C", filler="NEVER"))
    assert ack_code(answer) == "AE"
    assert err(answer) == ("OBR^1^3", "204")
    assert nothing_written()
    assert AuditEvent.objects.filter(action="fhir.delivery_refused").exists()


def test_unmatched_person_waits_in_the_queue_with_the_same_ack(peers, elder):
    known = send(peers, oru())
    unknown = send(peers, oru(number=UNKNOWN, filler="R-2", control="MSG0002"))
    assert ack_code(unknown) == "AA"
    assert segments(known)["MSA"][0][3] == segments(unknown)["MSA"][0][3]  # no existence oracle
    pending = PendingLabResult.objects.get()
    assert pending.kinds == "nucleic_acid" and pending.id_number_masked.endswith(UNKNOWN[-4:])


@pytest.mark.parametrize(
    ("message", "code", "location", "error"),
    [
        (oru(number="110101194001011230"), "AE", "PID^1^3", "102"),  # bad check digit (shared rule)
        (oru(authority="urn:other"), "AE", "PID^1^3^1^4", "101"),
        (oru(observations=[obx(code="0000-0^Unknown^LN")]), "AE", "OBX^1^3", "103"),
        (oru(observations=[obx(status="P")]).replace(b"|||F\rOBX", b"|||\rOBX"), "AE", "OBX^1^11", "103"),
        (oru(status="P"), "AE", "OBR^1^25", "103"),
        (oru(filler=""), "AE", "OBR^1^3", "101"),
        (oru(observations=[obx(value="")]), "AE", "OBX^1^5", "101"),
        (oru(observations=[]), "AE", "OBR^1", "101"),
        (oru(clinic="99999"), "AE", "MSH^1^6", "207"),  # a clinic this sender does not serve
        (oru(msg_type="ADT^A01"), "AR", "MSH^1^9", "200"),
        (oru(msg_type="ORU^R30"), "AR", "MSH^1^9", "201"),
        (oru(processing="T"), "AR", "MSH^1^11", "202"),
        (oru(version="2.1"), "AR", "MSH^1^12", "203"),
        (oru(control=""), "AR", "MSH^1^10", "101"),
        (oru(extra="MSH|^~\\&|X"), "AE", "MSH^2", "100"),
        (oru().replace(b"PID|", b"PXD|", 1), "AE", "OBR^1", "100"),  # OBR without its PID
        (oru().replace(b"20261130080000+0800", b"20261340080000", 1), "AE", "OBR^1^7", "102"),
    ],
)
def test_bad_content_gets_nak_with_precise_err_and_nothing_written(peers, elder, message, code, location, error):
    answer = send(peers, message)
    assert ack_code(answer) == code
    assert err(answer) == (location, error)
    assert segments(answer)["ERR"][0][8]  # the reason, in words
    assert nothing_written()


def test_all_or_nothing_when_one_report_in_the_message_fails(peers, elder):
    good = oru().decode().split("\r")
    second = [
        "OBR|2||R-2^CITYLAB|94500-6^^LN|||20261130080000+0800",
        obx(code="0000-0^Unknown^LN"),
    ]
    answer = send(peers, "\r".join(good + second).encode())
    assert ack_code(answer) == "AE"
    assert err(answer) == ("OBX^2^3", "103")
    assert nothing_written()


def test_unknown_sender_refused(peers, elder, lab):
    for message, ip in [(oru(facility="OTHERLAB"), LAB_IP), (oru(), "192.0.2.7")]:
        answer = send(peers, message, ip=ip)
        assert ack_code(answer) == "AR"
        assert err(answer) == ("MSH^1^4", "204")
    tokens.sender_revoke(name=lab.name)
    assert ack_code(send(peers, oru())) == "AR"
    assert nothing_written()
    assert not AuditEvent.objects.filter(action__startswith="fhir.delivery").exists()


def test_facility_alone_is_not_a_peer():
    with pytest.raises(peer_config.PeerConfigError):
        peer_config.load([{"facility": "CITYLAB", "sender": "City Lab"}])


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"garbage",
        b"MSH",
        b"MSH|^~\\&|" + b"\xff\xfe" * 10,
        b"MSH|^~\\&|LIS|CITYLAB|||||ORU^R01|1|P|2.5.1\rPID|||\x00^^^&&",
        b"MSH|^~\\&|LIS|CITYLAB|KG||20261130||ORU^R01|1|P|2.5.1||||||LATIN-9\rPID|1",
        oru() + b"\r" + b"\r".join([b"NTE|1||x"] * (MAX_SEGMENTS + 1)),
        b"x" * (MAX_MESSAGE_BYTES + 1),
    ],
)
def test_garbage_is_a_nak_never_a_crash(peers, elder, message):
    answer = send(peers, message)
    assert ack_code(answer) in ("AE", "AR")
    assert nothing_written()


def test_rate_limit(peers, elder, settings):
    settings.KINGUARD_HL7_RATE_PER_MINUTE = 2
    codes = [ack_code(send(peers, oru(filler=f"R-{n}", control=f"M{n}"))) for n in range(3)]
    assert codes == ["AA", "AA", "AR"]
    assert LabReport.objects.count() == 2


def test_escaping_in_the_ack(peers, elder):
    answer = send(peers, oru(control="A|B^C"))
    assert segments(answer)["MSA"][0][2] == "A"  # MSH-10 ends at the field separator as sent
    answer = send(peers, oru(observations=[obx(code="X|Y^^LN")]))
    assert all(len(f) == 9 for f in segments(answer)["ERR"])  # the text did not break the segment
