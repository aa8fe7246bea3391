"""The FHIR lab endpoint: every bad input is a 4xx OperationOutcome with nothing written;
auth, no reads, no existence oracle, transaction all-or-nothing, redelivery no-op."""

import copy
import json

import pytest
from django.core.management import call_command

from guardians import id_numbers
from guardians import services as guardian_services
from lookups.audit import Actor
from lookups.fhir import tokens
from lookups.fhir.models import LabCodeMap, LabReport, PendingLabResult
from lookups.fhir.services import CLINIC_SYSTEM, DEFAULT_ID_SYSTEMS, MAX_BODY_BYTES, MAX_ENTRIES
from lookups.models import AuditEvent, TestResult

ID_SYSTEM = DEFAULT_ID_SYSTEMS[0]
KNOWN = id_numbers.make_valid("11010119400101123")
UNKNOWN = id_numbers.make_valid("11010119410101456")
FHIR = "application/fhir+json"


@pytest.fixture
def elder(staff, clinic):
    return guardian_services.person_register(
        actor=Actor.for_user(staff), clinic=clinic, full_name="Wang Fang", id_number=KNOWN, is_elder=True
    )


@pytest.fixture
def lab(clinic):
    sender, token = tokens.sender_create(name="City Lab", clinic_ids=[clinic.pk])
    sender.token = token
    return sender


def report(identifier="R-1", number=KNOWN, code=("http://loinc.org", "94500-6"), status="final", value="Negative"):
    return {
        "resourceType": "DiagnosticReport",
        "identifier": [{"system": "urn:lab:city", "value": identifier}],
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "94500-6"}]},
        "subject": {"reference": "#p"},
        "effectiveDateTime": "2026-11-30T08:00:00+08:00",
        "issued": "2026-11-30T12:00:00+08:00",
        "contained": [
            {"resourceType": "Patient", "id": "p", "identifier": [{"system": ID_SYSTEM, "value": number}]},
            {
                "resourceType": "Observation",
                "id": "o1",
                "status": status,
                "code": {"coding": [{"system": code[0], "code": code[1]}]},
                "valueCodeableConcept": {"text": value},
            },
        ],
        "result": [{"reference": "#o1"}],
    }


def transaction_bundle(*reports, kind="transaction"):
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"fullUrl": f"urn:uuid:{n}", "resource": r, "request": {"method": "POST", "url": "DiagnosticReport"}}
            for n, r in enumerate(reports)
        ],
    }


def post(client, path, body, token, content_type=FHIR):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(path, data=data, content_type=content_type, **headers)


def assert_outcome(response, status, code=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(FHIR)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    if code:
        assert code in {i["code"] for i in body["issue"]}, body
    return body


def nothing_written():
    return not TestResult.objects.exists() and not PendingLabResult.objects.exists() and not LabReport.objects.exists()


# --- happy paths ------------------------------------------------------------------------------


def test_single_report_is_recorded_for_the_registered_person(client, lab, elder):
    response = post(client, "/fhir/DiagnosticReport", report(), lab.token)
    assert_outcome(response, 201, "informational")
    result = TestResult.objects.get()
    assert (result.elder, result.kind, result.result, result.lab) == (elder, "nucleic_acid", "Negative", "City Lab")
    event = AuditEvent.objects.filter(action="fhir.delivery_accepted").get()
    assert event.details["sender"] == "City Lab" and event.details["reports"] == 1
    assert "Negative" not in json.dumps(event.details) and KNOWN not in json.dumps(event.details)


def test_unmatched_report_waits_encrypted(client, lab, elder):
    response = post(client, "/fhir/DiagnosticReport", report(number=UNKNOWN), lab.token)
    assert response.status_code == 201
    pending = PendingLabResult.objects.get()
    assert b"Negative" not in bytes(pending.payload_ciphertext)
    assert not TestResult.objects.exists()


def test_matched_and_unmatched_answers_are_identical(client, lab, elder):
    matched = post(client, "/fhir/DiagnosticReport", report("A", KNOWN), lab.token)
    unmatched = post(client, "/fhir/DiagnosticReport", report("B", UNKNOWN), lab.token)
    assert matched.status_code == unmatched.status_code == 201
    assert matched.content == unmatched.content
    bundle_m = post(client, "/fhir/", transaction_bundle(report("C", KNOWN)), lab.token)
    bundle_u = post(client, "/fhir/", transaction_bundle(report("D", UNKNOWN)), lab.token)
    assert bundle_m.content == bundle_u.content


def test_person_of_a_clinic_the_sender_does_not_serve_is_not_matched(client, staff, other_clinic, clinic):
    from tests.factories import make_staff

    other_staff = make_staff(other_clinic)
    guardian_services.person_register(
        actor=Actor.for_user(other_staff), clinic=other_clinic, full_name="Li", id_number=KNOWN, is_elder=True
    )
    sender, token = tokens.sender_create(name="Lab A", clinic_ids=[clinic.pk])
    response = post(client, "/fhir/DiagnosticReport", report(), token)
    assert response.status_code == 201
    assert not TestResult.objects.exists()
    assert PendingLabResult.objects.get().clinic == clinic


def test_redelivery_is_a_no_op(client, lab, elder):
    assert post(client, "/fhir/DiagnosticReport", report(), lab.token).status_code == 201
    again = post(client, "/fhir/DiagnosticReport", report(value="Positive"), lab.token)
    assert again.status_code == 200
    assert TestResult.objects.get().result == "Negative"
    again = post(client, "/fhir/", transaction_bundle(report()), lab.token)
    assert again.json()["entry"][0]["response"]["status"] == "200 OK"
    assert TestResult.objects.count() == 1


def test_bundle_with_referenced_patient_and_observation(client, lab, elder):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p",
                "resource": {"resourceType": "Patient", "identifier": [{"system": ID_SYSTEM, "value": KNOWN}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:o",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                    "effectiveDateTime": "2026-11-30T08:00:00+08:00",
                    "valueQuantity": {"value": 13.5, "unit": "g/dL"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "fullUrl": "urn:uuid:r",
                "resource": {
                    "resourceType": "DiagnosticReport",
                    "identifier": [{"system": "urn:lab:city", "value": "R-9"}],
                    "status": "final",
                    "code": {"text": "Blood"},
                    "subject": {"reference": "urn:uuid:p"},
                    "result": [{"reference": "urn:uuid:o"}],
                },
                "request": {"method": "POST", "url": "DiagnosticReport"},
            },
        ],
    }
    response = post(client, "/fhir/", bundle, lab.token)
    assert response.status_code == 200, response.content
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["200 OK", "200 OK", "201 Created"]
    result = TestResult.objects.get()
    assert (result.kind, result.result) == ("blood", "13.5 g/dL")


def test_lab_code_map_maps_local_codes(client, lab, elder):
    LabCodeMap.objects.create(sender=lab, system="urn:lab:city:codes", code="PCR01", kind="nucleic_acid")
    response = post(client, "/fhir/DiagnosticReport", report(code=("urn:lab:city:codes", "PCR01")), lab.token)
    assert response.status_code == 201
    assert TestResult.objects.get().kind == "nucleic_acid"


# --- transaction all-or-nothing, batch per entry ----------------------------------------------


def test_transaction_is_all_or_nothing(client, lab, elder):
    bad = report("R-2", code=("http://loinc.org", "00000-0"))
    response = post(client, "/fhir/", transaction_bundle(report("R-1"), bad), lab.token)
    body = assert_outcome(response, 422, "code-invalid")
    assert body["issue"][0]["expression"] == ["Bundle.entry[1].resource.result[0].code"]
    assert nothing_written()
    assert AuditEvent.objects.filter(action="fhir.delivery_refused").count() == 1


def test_batch_answers_per_entry(client, lab, elder):
    bad = report("R-2", number=KNOWN[:-1] + ("0" if KNOWN[-1] != "0" else "1"))
    response = post(client, "/fhir/", transaction_bundle(report("R-1"), bad, kind="batch"), lab.token)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"] == "422"
    assert entries[1]["response"]["outcome"]["issue"][0]["code"] == "value"
    assert TestResult.objects.count() == 1


# --- bad input: 4xx OperationOutcome, nothing written -----------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/fhir/", b"{not json", 400, "structure"),
        ("/fhir/", b"\xff\xfe", 400, "structure"),
        ("/fhir/", b"[1, 2]", 400, "structure"),
        ("/fhir/", b"[" * 100000, 400, "structure"),
        ("/fhir/", {"resourceType": "Patient"}, 400, "not-supported"),
        ("/fhir/", {"resourceType": "Bundle", "type": "document", "entry": []}, 400, "not-supported"),
        ("/fhir/", {"resourceType": "Bundle", "type": "transaction", "entry": []}, 400, "required"),
        (
            "/fhir/",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"resource": {"resourceType": "Account", "status": "active"}}],
            },
            400,
            "not-supported",
        ),
        ("/fhir/", {"resourceType": "Bundle", "type": "transaction", "entry": "x"}, 400, None),
        ("/fhir/DiagnosticReport", {"resourceType": "Observation"}, 400, "not-supported"),
        ("/fhir/DiagnosticReport", {"resourceType": "DiagnosticReport", "status": 5, "code": {}}, 400, "invalid"),
        (
            "/fhir/DiagnosticReport",
            {"resourceType": "DiagnosticReport", "status": "final", "code": {}, "bogus": 1},
            400,
            "invalid",
        ),
        (
            "/fhir/",
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [{"resource": {"resourceType": "Observation", "valueQuantity": "x"}}],
            },
            400,
            "invalid",
        ),
    ],
)
def test_malformed_deliveries(client, lab, elder, path, body, status, code):
    response = post(client, path, body, lab.token)
    assert_outcome(response, status, code)
    assert nothing_written()


def mutate(fn):
    r = report()
    fn(r)
    return r


@pytest.mark.parametrize(
    ("body", "code", "expression"),
    [
        (report(code=("http://loinc.org", "12345-6")), "code-invalid", "DiagnosticReport.result[0].code"),
        (
            report(number=KNOWN[:-1] + ("0" if KNOWN[-1] != "0" else "1")),
            "value",
            "DiagnosticReport.subject.identifier",
        ),
        (report(number="123"), "value", "DiagnosticReport.subject.identifier"),
        (report(status="preliminary"), "not-supported", "DiagnosticReport.status"),
        (mutate(lambda r: r.pop("identifier")), "required", "DiagnosticReport.identifier"),
        (mutate(lambda r: r["contained"][0].update(identifier=[])), "required", "DiagnosticReport.subject.identifier"),
        (mutate(lambda r: r.update(subject={"reference": "Patient/123"})), "not-found", "DiagnosticReport.subject"),
        (mutate(lambda r: r.update(result=[{"reference": "#p"}])), "invalid", "DiagnosticReport.result[0]"),
        (mutate(lambda r: r["contained"][1].pop("valueCodeableConcept")), "required", "DiagnosticReport.result[0]"),
        (mutate(lambda r: r.update(issued="2099-01-01T00:00:00+00:00")), "value", "DiagnosticReport.issued"),
        (
            mutate(lambda r: r.update(effectiveDateTime="2026-12-31T00:00:00+00:00")),
            "value",
            "DiagnosticReport.result[0]",
        ),
        (
            mutate(lambda r: r["contained"][1].update(valueCodeableConcept={"text": "x" * 300})),
            "too-long",
            "DiagnosticReport.result[0]",
        ),
    ],
)
def test_invalid_reports_are_unprocessable(client, lab, elder, body, code, expression):
    response = post(client, "/fhir/DiagnosticReport", copy.deepcopy(body), lab.token)
    outcome = assert_outcome(response, 422, code)
    assert outcome["issue"][0]["expression"] == [expression]
    assert nothing_written()
    refused = AuditEvent.objects.get(action="fhir.delivery_refused")
    assert refused.details["sender"] == "City Lab" and refused.outcome == "422"
    assert KNOWN not in json.dumps(refused.details)


def test_clinic_the_sender_does_not_serve_is_forbidden(client, lab, elder, other_clinic):
    r = report()
    r["contained"][0]["managingOrganization"] = {"identifier": {"system": CLINIC_SYSTEM, "value": str(other_clinic.pk)}}
    assert_outcome(post(client, "/fhir/DiagnosticReport", r, lab.token), 403, "forbidden")
    assert nothing_written()


def test_big_body_is_413_without_reading_it(client, lab, elder):
    body = b'{"resourceType": "Bundle", "x": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'
    assert_outcome(post(client, "/fhir/", body, lab.token), 413, "too-costly")
    assert nothing_written()


def test_too_many_entries_is_413(client, lab, elder):
    bundle = transaction_bundle(*[{"resourceType": "Observation"}] * (MAX_ENTRIES + 1))
    assert_outcome(post(client, "/fhir/", bundle, lab.token), 413, "too-costly")
    ten_thousand = transaction_bundle(*[{"resourceType": "Observation"}] * 10000)
    assert post(client, "/fhir/", ten_thousand, lab.token).status_code == 413
    assert nothing_written()


def test_wrong_content_type_is_415(client, lab, elder):
    assert_outcome(post(client, "/fhir/DiagnosticReport", report(), lab.token, content_type="text/plain"), 415)
    assert nothing_written()


def test_rate_limit(client, lab, elder, settings):
    settings.KINGUARD_FHIR_RATE_PER_MINUTE = 2
    assert post(client, "/fhir/DiagnosticReport", report("1"), lab.token).status_code == 201
    assert post(client, "/fhir/DiagnosticReport", report("2"), lab.token).status_code == 201
    assert_outcome(post(client, "/fhir/DiagnosticReport", report("3"), lab.token), 429, "throttled")
    assert LabReport.objects.count() == 2


# --- who may deliver, and that nothing can be read ----------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer wrong", "Basic abc", "Bearer " + "x" * 500])
def test_missing_or_wrong_token_is_401(client, lab, elder, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.post("/fhir/DiagnosticReport", data=json.dumps(report()), content_type=FHIR, **extra)
    assert_outcome(response, 401, "login")
    assert response["WWW-Authenticate"] == "Bearer"
    assert nothing_written()


def test_revoked_and_rotated_tokens_stop_working(client, lab, elder):
    _, new_token = tokens.sender_rotate(name=lab.name)
    assert_outcome(post(client, "/fhir/DiagnosticReport", report("1"), lab.token), 401)
    assert post(client, "/fhir/DiagnosticReport", report("1"), new_token).status_code == 201
    tokens.sender_revoke(name=lab.name)
    assert_outcome(post(client, "/fhir/DiagnosticReport", report("2"), new_token), 401)


def test_token_is_stored_only_hashed(lab):
    lab.refresh_from_db()
    assert lab.token not in lab.token_hash and lab.token_hash == tokens.token_hash(lab.token)


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/",
        "/fhir/DiagnosticReport",
        "/fhir/Patient",
        "/fhir/Patient?identifier=x",
        "/fhir/DiagnosticReport/1",
        "/fhir/Observation",
    ],
)
def test_a_sender_can_read_nothing(client, lab, elder, path):
    post(client, "/fhir/DiagnosticReport", report(), lab.token)
    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {lab.token}")
    assert response.status_code in (404, 405)
    assert response.json()["resourceType"] == "OperationOutcome"
    assert b"Wang" not in response.content and KNOWN.encode() not in response.content
    anonymous = client.get(path)
    assert anonymous.status_code == response.status_code and anonymous.content == response.content


def test_metadata_is_a_capability_statement(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement" and body["fhirVersion"] == "4.0.1"
    assert {r["type"] for r in body["rest"][0]["resource"]} == {"DiagnosticReport", "Observation", "Patient"}


def test_lab_sender_command_prints_token_once(clinic, capsys):
    call_command("lab_sender", "create", "Cmd Lab", "--clinic", str(clinic.pk))
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert tokens.sender_for_token(token).name == "Cmd Lab"
    call_command("lab_sender", "rotate", "Cmd Lab")
    assert tokens.sender_for_token(token) is None
    call_command("lab_sender", "revoke", "Cmd Lab")


def test_pending_results_are_attached_at_registration(client, lab, staff, clinic):
    assert post(client, "/fhir/DiagnosticReport", report(), lab.token).status_code == 201
    assert PendingLabResult.objects.count() == 1 and not TestResult.objects.exists()
    person = guardian_services.person_register(
        actor=Actor.for_user(staff), clinic=clinic, full_name="Wang Fang", id_number=KNOWN, is_elder=True
    )
    result = TestResult.objects.get()
    assert (result.elder, result.result, result.kind) == (person, "Negative", "nucleic_acid")
    assert not PendingLabResult.objects.exists()
    assert LabReport.objects.get().outcome == LabReport.Outcome.RECORDED
    # the redelivery of an attached report is still a no-op
    assert post(client, "/fhir/DiagnosticReport", report(), lab.token).status_code == 200
    assert TestResult.objects.count() == 1


def test_pending_results_stay_when_registered_at_a_clinic_the_lab_does_not_serve(client, lab, other_clinic):
    from tests.factories import make_staff

    post(client, "/fhir/DiagnosticReport", report(), lab.token)
    guardian_services.person_register(
        actor=Actor.for_user(make_staff(other_clinic)), clinic=other_clinic, full_name="W", id_number=KNOWN
    )
    assert PendingLabResult.objects.count() == 1 and not TestResult.objects.exists()


def test_sender_of_several_clinics_must_name_one(client, clinic, other_clinic, elder):
    _, token = tokens.sender_create(name="Regional", clinic_ids=[clinic.pk, other_clinic.pk])
    assert_outcome(post(client, "/fhir/DiagnosticReport", report(), token), 422, "required")
    r = report()
    r["contained"][0]["managingOrganization"] = {"identifier": {"system": CLINIC_SYSTEM, "value": str(clinic.pk)}}
    assert post(client, "/fhir/DiagnosticReport", r, token).status_code == 201
    assert TestResult.objects.get().elder == elder


def test_pending_payloads_follow_key_rotation(client, lab, settings):
    from cryptography.fernet import Fernet

    from guardians import crypto
    from guardians.key_rotation import rows_remaining

    post(client, "/fhir/DiagnosticReport", report(number=UNKNOWN), lab.token)
    new_key = Fernet.generate_key().decode()
    settings.KINGUARD_ENCRYPTION_KEYS = [new_key, *settings.KINGUARD_ENCRYPTION_KEYS]
    assert rows_remaining() == 1
    call_command("rotate_keys")
    settings.KINGUARD_ENCRYPTION_KEYS = [new_key]
    payload = json.loads(crypto.decrypt(PendingLabResult.objects.get().payload_ciphertext))
    assert payload["rows"][0]["result"] == "Negative"


def test_audit_chain_verifies_after_deliveries_and_refusals(client, lab, elder):
    post(client, "/fhir/DiagnosticReport", report("1"), lab.token)
    post(client, "/fhir/DiagnosticReport", report("2", number=UNKNOWN), lab.token)
    post(client, "/fhir/", transaction_bundle(report("3"), report("4", code=("x", "y"))), lab.token)
    post(client, "/fhir/", b"{", lab.token)
    actions = list(AuditEvent.objects.order_by("sequence").values_list("action", "actor_label"))
    assert ("fhir.delivery_accepted", "lab:City Lab") in actions
    assert [a for a, _ in actions].count("fhir.delivery_refused") == 2
    assert [a for a, _ in actions].count("result.recorded") == 1
    call_command("verify_audit")  # exits 1 on a broken chain
