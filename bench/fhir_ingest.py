"""Benchmark: single-report FHIR deliveries through the full Django stack, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kg_fhir .venv/bin/python bench/fhir_ingest.py --reports 500

In-process (Django test ``Client``, no web server): migrates the database, creates a clinic,
N/2 registered people and a sender, then POSTs N generated reports to /fhir/DiagnosticReport
(half matched, half unmatched), one after another, and prints reports/s and p50/p95 latency.
Its reports, results and waiting results are removed at the end; the people and
audit events stay (audited people are protected, events append-only): use a scratch database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=int, default=500)
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from guardians import id_numbers
    from guardians.models import Clinic, Person, StaffMembership, User
    from guardians.services import person_register
    from lookups.audit import Actor
    from lookups.fhir import tokens
    from lookups.fhir.models import LabReport, LabSender
    from lookups.fhir.services import DEFAULT_ID_SYSTEMS
    from lookups.models import TestResult

    settings.ALLOWED_HOSTS = ["*"]
    settings.KINGUARD_FHIR_RATE_PER_MINUTE = 10**9
    call_command("migrate", verbosity=0)
    stamp = str(int(time.time()))
    clinic = Clinic.objects.create(name=f"bench-fhir-{stamp}")
    staff = User.objects.create(username=f"bench-fhir-{stamp}", is_staff=True)
    StaffMembership.objects.create(user=staff, clinic=clinic, role="staff")
    numbers = [
        id_numbers.make_valid(f"3301021950{n // 28 % 12 + 1:02d}{n % 28 + 1:02d}{n % 1000:03d}")
        for n in range(args.reports)
    ]
    numbers = list(dict.fromkeys(numbers))
    people = []
    for number in numbers[::2]:
        if not Person.objects.filter(id_number_hash=__import__("guardians.crypto").crypto.keyed_hash(number)).exists():
            people.append(
                person_register(actor=Actor.for_user(staff), clinic=clinic, full_name="Bench", id_number=number)
            )
    sender, token = tokens.sender_create(name=f"bench-{stamp}", clinic_ids=[clinic.pk])
    client = Client()
    times = []
    for n, number in enumerate(numbers):
        body = {
            "resourceType": "DiagnosticReport",
            "identifier": [{"system": "urn:bench", "value": f"{stamp}-{n}"}],
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "94500-6"}]},
            "subject": {"reference": "#p"},
            "effectiveDateTime": "2026-11-30T08:00:00+08:00",
            "issued": "2026-11-30T12:00:00+08:00",
            "contained": [
                {
                    "resourceType": "Patient",
                    "id": "p",
                    "identifier": [{"system": DEFAULT_ID_SYSTEMS[0], "value": number}],
                },
                {
                    "resourceType": "Observation",
                    "id": "o",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "94500-6"}]},
                    "valueCodeableConcept": {"text": "Negative"},
                },
            ],
            "result": [{"reference": "#o"}],
        }
        started = time.perf_counter()
        response = client.post(
            "/fhir/DiagnosticReport",
            json.dumps(body),
            content_type="application/fhir+json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        times.append(time.perf_counter() - started)
        assert response.status_code == 201, response.content
    total = sum(times)
    times.sort()
    print(f"{len(times)} reports ({len(people)} matched) in {total:.2f}s: {len(times) / total:.1f} reports/s")
    print(
        f"latency p50 {statistics.median(times) * 1000:.1f} ms, p95 {times[int(len(times) * 0.95) - 1] * 1000:.1f} ms"
    )
    reports = LabReport.objects.filter(sender=sender)
    TestResult.objects.filter(lab_reports__in=reports).delete()
    reports.delete()
    LabSender.objects.filter(pk=sender.pk).delete()


if __name__ == "__main__":
    main()
