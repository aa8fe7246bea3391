"""Benchmark: FHIR result deliveries against a real server (gunicorn, production settings, PostgreSQL).

    flock /tmp/kg-heavy.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/kg_scratch \\
        REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/fhir_ingest.py --duration 30

What it does:
1. generates throw-away secrets (encryption, ID-hash and audit-signing keys) for this run only
   and sets ``DJANGO_SETTINGS_MODULE=config.settings.production`` with them, for itself and
   for the server, so both compute the same keyed hashes;
2. migrates the database, creates a clinic, ``--people`` registered people (through
   ``person_register``, audited) and a sender with a token;
3. starts ``gunicorn -c deploy/gunicorn.conf.py config.wsgi`` (``--workers`` sync workers, as
   deployed) on ``--bind``, with requests marked ``X-Forwarded-Proto: https`` as nginx does;
4. POSTs generated single reports to /fhir/DiagnosticReport from ``--concurrency`` client
   threads for ``--duration`` seconds (half for registered people, half for nobody registered;
   70 % one PCR/antigen observation, 30 % a three-value blood panel), then prints sustained
   reports/s and p50/p95/p99 per POST beside the targets (>= 50 reports/s, p95 <= 200 ms);
5. with ``--bundle-size`` > 0, also POSTs transaction Bundles of that many reports;
6. stops the server, removes the run's reports, results and waiting results. People and
   audit events stay (audited people are protected, events append-only): use a scratch database.

The client threads run on the same machine (their CPU counts against the server's).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATE = 50.0
TARGET_P95_MS = 200.0
LOINC = "http://loinc.org"
SINGLE_CODES = [("94500-6", "Negative"), ("94500-6", "Positive"), ("94558-4", "Negative")]
PANEL = [("718-7", 13.2, "g/dL"), ("6690-2", 6.1, "10*3/uL"), ("777-3", 250, "10*3/uL")]


def server_env(args: argparse.Namespace) -> dict[str, str]:
    from cryptography.fernet import Fernet

    var = Path(args.var_dir)
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "KINGUARD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "KINGUARD_ID_HASH_KEY": secrets.token_urlsafe(48),
        "KINGUARD_AUDIT_SIGNING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "CELERY_BROKER_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
        "CACHE_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
        "KINGUARD_FHIR_RATE_PER_MINUTE": str(10**9),
        "KINGUARD_VAR_DIR": str(var),
        "KINGUARD_PRIVATE_STORAGE": str(var / "private"),
        "KINGUARD_PROBE_DIR": str(var / "probes"),
        "KINGUARD_LOG_FORMAT": "json",
        "GUNICORN_BIND": args.bind,
        "GUNICORN_WORKERS": str(args.workers),
        "GUNICORN_LOG_LEVEL": "warning",
    }


def patient(number: str) -> dict:
    from lookups.fhir.services import DEFAULT_ID_SYSTEMS

    return {"resourceType": "Patient", "id": "p", "identifier": [{"system": DEFAULT_ID_SYSTEMS[0], "value": number}]}


def report_body(rng: random.Random, identifier: str, number: str) -> dict:
    observations = []
    if rng.random() < 0.7:
        code, value = rng.choice(SINGLE_CODES)
        observations.append(
            {
                "resourceType": "Observation",
                "id": "o0",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "valueCodeableConcept": {"text": value},
            }
        )
        report_code = code
    else:
        report_code = "58410-2"
        for n, (code, value, unit) in enumerate(PANEL):
            observations.append(
                {
                    "resourceType": "Observation",
                    "id": f"o{n}",
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": code}]},
                    "valueQuantity": {"value": round(value * rng.uniform(0.8, 1.2), 1), "unit": unit},
                }
            )
    return {
        "resourceType": "DiagnosticReport",
        "identifier": [{"system": "urn:oid:2.16.156.bench.lis", "value": identifier}],
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": report_code}]},
        "subject": {"reference": "#p"},
        "effectiveDateTime": "2026-11-30T08:00:00+08:00",
        "issued": "2026-11-30T12:00:00+08:00",
        "contained": [patient(number), *observations],
        "result": [{"reference": f"#{o['id']}"} for o in observations],
    }


def post(bind: str, path: str, body: bytes, token: str) -> tuple[int, float]:
    host, port = bind.rsplit(":", 1)
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(
            "POST",
            path,
            body,
            {
                "Content-Type": "application/fhir+json",
                "Authorization": f"Bearer {token}",
                "X-Forwarded-Proto": "https",
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        conn.close()


def wait_ready(bind: str, server: subprocess.Popen, timeout: float = 60) -> None:
    host, port = bind.rsplit(":", 1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=2)
            conn.request("GET", "/fhir/metadata", headers={"X-Forwarded-Proto": "https"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("gunicorn did not answer /fhir/metadata")


def run_load(args, token: str, bodies: list[bytes], path: str, duration: float) -> tuple[list[float], dict, float]:
    """POST ``bodies`` in order from ``args.concurrency`` threads until ``duration`` has passed."""
    lock = threading.Lock()
    state = {"next": 0}
    times: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + duration

    def worker() -> None:
        while time.perf_counter() < stop_at:
            with lock:
                n = state["next"]
                state["next"] += 1
            if n >= len(bodies):
                return
            status, took = post(args.bind, path, bodies[n], token)
            with lock:
                times.append(took)
                statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, statuses, time.perf_counter() - started


def pct(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * len(ordered))) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sustained single-report POSTs")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--people", type=int, default=500, help="registered people (half the reports match)")
    parser.add_argument("--bundle-size", type=int, default=0, help="also POST transaction Bundles of N reports")
    parser.add_argument("--bundles", type=int, default=20)
    parser.add_argument("--bind", default="127.0.0.1:8765")
    parser.add_argument("--var-dir", default="/tmp/kg-fhir-bench")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("Set DATABASE_URL to a scratch PostgreSQL database.")

    env = server_env(args)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    from guardians import id_numbers
    from guardians.models import Clinic, StaffMembership, User
    from guardians.services import person_register
    from lookups.audit import Actor
    from lookups.fhir import tokens
    from lookups.fhir.models import LabReport, LabSender
    from lookups.models import TestResult

    call_command("migrate", verbosity=0)
    stamp = str(int(time.time()))
    rng = random.Random(int(stamp))
    clinic = Clinic.objects.create(name=f"bench-fhir-{stamp}")
    staff = User.objects.create(username=f"bench-fhir-{stamp}", is_staff=True)
    StaffMembership.objects.create(user=staff, clinic=clinic, role="staff")
    area = f"{rng.randrange(110000, 659000):06d}"

    def number(n: int) -> str:
        born = f"19{rng.randrange(30, 60)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        return id_numbers.make_valid(f"{area}{born}{n % 1000:03d}")

    registered = list(dict.fromkeys(number(n) for n in range(args.people)))
    set_up = time.perf_counter()
    for value in registered:
        person_register(actor=Actor.for_user(staff), clinic=clinic, full_name="Bench", id_number=value)
    print(f"set-up: {len(registered)} people registered in {time.perf_counter() - set_up:.1f}s")
    unregistered = [number(n) for n in range(args.people)]
    sender, token = tokens.sender_create(name=f"bench-{stamp}", clinic_ids=[clinic.pk])
    count = int(args.duration * 400) + 50
    bodies = [
        json.dumps(
            report_body(rng, f"{stamp}-{n}", rng.choice(registered if n % 2 == 0 else unregistered)),
            separators=(",", ":"),
        ).encode()
        for n in range(count)
    ]
    var = Path(args.var_dir)
    var.mkdir(parents=True, exist_ok=True)
    log = (var / "gunicorn.log").open("ab")  # the access lines, as production writes them
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "-c", str(ROOT / "deploy/gunicorn.conf.py"), "config.wsgi"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=log,
    )
    try:
        wait_ready(args.bind, server)
        warm = [
            json.dumps(report_body(rng, f"{stamp}-warm-{n}", registered[n % len(registered)])).encode()
            for n in range(args.workers * 4)
        ]
        run_load(args, token, warm, "/fhir/DiagnosticReport", 30)
        times, statuses, wall = run_load(args, token, bodies, "/fhir/DiagnosticReport", args.duration)
        ok = statuses.get(201, 0)
        rate, p95 = ok / wall, pct(times, 0.95)
        print(
            f"gunicorn {args.workers} sync workers (deploy/gunicorn.conf.py, config.settings.production), "
            f"{args.concurrency} client threads, PostgreSQL, {os.cpu_count()} cores shared"
        )
        print(f"single-report POST /fhir/DiagnosticReport: {ok} accepted in {wall:.1f}s, statuses {statuses}")
        rate_met = "met" if rate >= TARGET_RATE else "MISSED"
        p95_met = "met" if p95 <= TARGET_P95_MS else "MISSED"
        print(f"  sustained {rate:.1f} reports/s (target >= {TARGET_RATE:.0f}: {rate_met})")
        print(
            f"  latency p50 {statistics.median(times) * 1000:.0f} ms, p95 {p95:.0f} ms "
            f"(target <= {TARGET_P95_MS:.0f}: {p95_met}), p99 {pct(times, 0.99):.0f} ms"
        )
        if args.bundle_size > 0:
            bundles = []
            for b in range(args.bundles):
                entries = []
                for n in range(args.bundle_size):
                    person = rng.choice(registered if n % 2 == 0 else unregistered)
                    resource = report_body(rng, f"{stamp}-b{b}-{n}", person)
                    entries.append({"resource": resource, "request": {"method": "POST", "url": "DiagnosticReport"}})
                bundles.append(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}).encode())
            btimes, bstatuses, bwall = run_load(args, token, bundles, "/fhir/", 3600)
            done = bstatuses.get(200, 0) * args.bundle_size
            print(
                f"transaction Bundles of {args.bundle_size}: {bstatuses} in {bwall:.1f}s, "
                f"{done / bwall:.1f} reports/s, p95 {pct(btimes, 0.95):.0f} ms per Bundle"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        reports = LabReport.objects.filter(sender=sender)
        TestResult.objects.filter(lab_reports__in=reports).delete()
        reports.delete()
        LabSender.objects.filter(pk=sender.pk).delete()


if __name__ == "__main__":
    main()
