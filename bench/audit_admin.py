"""Benchmark: the auditors' admin pages over 1,000,000 audit events on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kg_oversight .venv/bin/python bench/audit_admin.py

Creates its own database ``<name of DATABASE_URL's database>_auditbench`` (dropped at the
end unless ``--keep``; ``--reuse`` keeps an already seeded one), migrates it and seeds
people plus N audit events (default 1,000,000) spread over a year. The events carry a
**valid hash chain**: each hash is computed with ``lookups.audit.compute_hash`` exactly as
``audit_record`` would, and the rows are loaded with PostgreSQL ``COPY`` (the people are
bulk-inserted without the services: the bench is about reading the log). ``--verify``
also runs the full chain verification and reports its time.

Each page is rendered through Django's test ``Client`` as a signed-in superuser whose OTP
device is verified (and as a clinic auditor for the scoped list), warmed up, then timed
``--runs`` times; the median and the ratio to the 100 ms target are printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse, urlunparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
TARGET_MS = 100.0

ACTION_MIX = [
    ("lookup.started", "awaiting_otp", 14),
    ("otp.verified", "ok", 12),
    ("otp.failed", "wrong_code", 3),
    ("face.submitted", "queued", 13),
    ("face.verdict", "match", 10),
    ("face.verdict", "no_match", 3),
    ("lookup.granted", "granted", 10),
    ("results.viewed", "shown", 14),
    ("lookup.cancelled", "cancelled", 2),
    ("lookup.expired", "expired", 2),
    ("login.succeeded", "ok", 8),
    ("login.failed", "invalid_login", 2),
    ("person.viewed", "ok", 4),
    ("authorization.approved", "active", 1),
    ("notice.sent", "sent", 2),
]


def bench_database_url() -> tuple[str, str, str]:
    url = os.environ.get("DATABASE_URL", "")
    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (the bench creates <name>_auditbench beside it).")
    name = (parsed.path.lstrip("/") or "kinguard") + "_auditbench"
    bench = urlunparse(parsed._replace(path=f"/{name}"))
    admin = urlunparse(parsed._replace(path="/postgres"))
    return bench, admin, name


def create_database(admin_url: str, name: str, *, reuse: bool) -> bool:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and reuse:
            return False
        if exists:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return True


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(events: int, rng: random.Random) -> None:
    from django.db import connection

    from guardians.models import Clinic, Person, User
    from lookups.audit import GENESIS_HASH, compute_hash
    from lookups.models import AuditChainHead

    started = time.monotonic()
    clinics = [Clinic.objects.create(name=f"Bench clinic {i}") for i in range(3)]
    users = User.objects.bulk_create([User(username=f"guardian{i}", password="!") for i in range(600)])
    people = []
    for i in range(2400):
        is_guardian = i < 600
        people.append(
            Person(
                clinic=clinics[i % 3],
                full_name=f"{'Guardian' if is_guardian else 'Elder'} {i}",
                id_number_hash=hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
                id_number_ciphertext=b"bench",
                id_number_masked="110101********0000",
                birth_date=dt.date(1940 + i % 50, 1, 1),
                is_elder=not is_guardian,
                is_guardian=is_guardian,
                user=users[i] if is_guardian else None,
            )
        )
    people = Person.objects.bulk_create(people)
    guardians, elders = people[:600], people[600:]
    print(f"seeded {len(clinics)} clinics, {len(people)} people in {time.monotonic() - started:.1f} s", flush=True)

    weights = [w for _, _, w in ACTION_MIX]
    start_time = dt.datetime.now(dt.UTC) - dt.timedelta(days=365)
    step = dt.timedelta(days=365) / events
    columns = (
        "sequence, created_at, actor_id, actor_label, clinic_id, action, outcome, subject_id, "
        "target_type, target_id, ip, user_agent, details, prev_hash, hash"
    )
    ips = [f"10.{a}.{b}.{c}" for a in range(4) for b in range(8) for c in range(1, 40)]
    prev = GENESIS_HASH
    started = time.monotonic()
    connection.ensure_connection()
    with connection.connection.cursor() as raw, raw.copy(f"COPY lookups_auditevent ({columns}) FROM STDIN") as copy:
        for seq in range(1, events + 1):
            action, outcome, _ = rng.choices(ACTION_MIX, weights)[0]
            elder = elders[rng.randrange(len(elders))]
            system = action in ("face.verdict", "lookup.granted", "notice.sent")
            guardian = guardians[rng.randrange(len(guardians))]
            actor_id = None if system else guardian.user_id
            event = SimpleNamespace(
                sequence=seq,
                created_at=start_time + step * seq,
                actor_id=actor_id,
                actor_label="system:face-worker" if system else f"guardian{actor_id}",
                clinic_id=elder.clinic_id,
                action=action,
                outcome=outcome,
                subject_id=None if action.startswith("login.") else elder.pk,
                target_type="lookups.LookupRequest",
                target_id=str(uuid.UUID(int=rng.getrandbits(128))),
                ip=None if system else ips[rng.randrange(len(ips))],
                user_agent="" if system else "Mozilla/5.0 (Linux; Android 14) Bench",
                details={"n": seq % 97, "self": False},
            )
            digest = compute_hash(prev, event)
            copy.write_row(
                (
                    seq,
                    event.created_at,
                    event.actor_id,
                    event.actor_label,
                    event.clinic_id,
                    event.action,
                    event.outcome,
                    event.subject_id,
                    event.target_type,
                    event.target_id,
                    event.ip,
                    event.user_agent,
                    json.dumps(event.details),
                    prev,
                    digest,
                )
            )
            prev = digest
            if seq % 200_000 == 0:
                print(f"  {seq:,} events ({time.monotonic() - started:.0f} s)", flush=True)
    AuditChainHead.objects.update_or_create(pk=1, defaults={"last_sequence": events, "last_hash": prev})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # what autovacuum does on a live system
    print(f"seeded {events:,} chained audit events in {time.monotonic() - started:.1f} s", flush=True)


def signed_in_client(user):
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(user=user, name="bench", defaults={"confirmed": True})
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def time_page(client, url: str, runs: int) -> tuple[float, int]:
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(timings), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse an already seeded bench database")
    parser.add_argument("--verify", action="store_true", help="also time a full verify_chain()")
    args = parser.parse_args()

    bench_url, admin_url, name = bench_database_url()
    fresh = create_database(admin_url, name, reuse=args.reuse)
    os.environ["DATABASE_URL"] = bench_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment
    from django.urls import reverse
    from django.utils import timezone

    from guardians.models import Person, StaffMembership, User
    from lookups.models import AuditEvent

    setup_test_environment()
    try:
        if fresh:
            call_command("migrate", verbosity=0)
            seed(args.events, random.Random(2026))
        total = AuditEvent.objects.count()
        print(f"database {name}: {total:,} audit events", flush=True)

        superuser, _ = User.objects.get_or_create(
            username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
        )
        auditor, _ = User.objects.get_or_create(username="bench-auditor", defaults={"is_staff": True})
        clinic = Person.objects.filter(is_elder=True).first().clinic
        StaffMembership.objects.get_or_create(user=auditor, clinic=clinic, defaults={"role": "auditor"})
        as_admin, as_auditor = signed_in_client(superuser), signed_in_client(auditor)

        # a busy elder of the auditor's clinic, a week in the middle of the year
        elder = Person.objects.filter(is_elder=True, clinic=clinic).first()
        middle = timezone.localdate() - dt.timedelta(days=180)
        week_end = middle + dt.timedelta(days=6)
        changelist = reverse("admin:lookups_auditevent_changelist")
        pages = [
            ("admin list, unfiltered", as_admin, changelist, True),
            ("admin list, action=results.viewed", as_admin, f"{changelist}?action=results.viewed", True),
            ("admin list, one week", as_admin, f"{changelist}?since={middle}&until={week_end}", True),
            ("admin list, subject=one elder", as_admin, f"{changelist}?subject={elder.public_id}", True),
            (
                "per-elder access report",
                as_admin,
                reverse("admin:lookups_auditevent_elder_report", args=[elder.public_id]),
                True,
            ),
            ("admin list, clinic auditor", as_auditor, changelist, False),
            ("admin list, auditor + action", as_auditor, f"{changelist}?action=otp.failed", False),
            ("dashboard (30 days of charts)", as_admin, reverse("admin:lookups_auditevent_dashboard"), False),
        ]
        print(f"\n{'page':<40} {'median ms':>10} {'ratio to 100 ms':>16}  target")
        worst = 0.0
        for label, client, url, targeted in pages:
            median, size = time_page(client, url, args.runs)
            ratio = median / TARGET_MS
            if targeted:
                worst = max(worst, ratio)
            mark = ("ok" if ratio <= 1 else "OVER") if targeted else "(info)"
            print(f"{label:<40} {median:>10.1f} {ratio:>16.2f}  {mark}", flush=True)
        print(f"\nworst ratio over the targeted pages: {worst:.2f} (<= 1.00 meets the 100 ms target)")
        if args.verify:
            from lookups.audit import verify_chain

            started = time.monotonic()
            checked, broken = verify_chain()
            print(f"verify_chain: {checked:,} events, break={broken}, {time.monotonic() - started:.1f} s")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(admin_url, name)


if __name__ == "__main__":
    main()
