"""Benchmark: a 5,000-row results CSV import on PostgreSQL, per-row audit path vs batched.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kg_audit2 .venv/bin/python bench/results_import.py

Creates its own database ``<name of DATABASE_URL's database>_importbench`` (dropped at the
end unless ``--keep``), migrates it, registers N elders at one clinic (bulk insert with real
keyed hashes and encrypted ID numbers, as ``person_register`` stores them) and writes two
real CSV files of N rows (one per elder; the second file a day later, so it is not a
re-import). Then, in one run:

* **before**: the checks of ``results_import_csv`` followed by the old write path, one
  ``result_record`` per row (each taking the chain-head lock and writing its own event) and
  the ``results.imported`` event;
* **after**: ``results_import_csv`` as it is now (results bulk-inserted, then all events
  appended by ``audit_record_many`` under one head lock with one bulk insert).

For each it prints the wall time, the **database time** (time spent in every SQL statement
plus the COMMIT, measured around the driver calls), the number of statements, and the
**head-lock hold time**: from the ``SELECT ... FOR UPDATE`` of the chain head until the
COMMIT returned (the lock is released at commit). It then verifies the whole chain.
Targets: <= 1 s database time, <= 100 ms lock.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audit_admin import create_database, drop_database  # noqa: E402

DB_TARGET_S = 1.0
LOCK_TARGET_MS = 100.0
HEADER = "ID number,test kind,sampled at,site,lab,result,reported at"


def bench_database_url() -> tuple[str, str, str]:
    from urllib.parse import urlparse, urlunparse

    parsed = urlparse(os.environ.get("DATABASE_URL", ""))
    if not parsed.scheme.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (the bench creates <name>_importbench beside it).")
    name = (parsed.path.lstrip("/") or "kinguard") + "_importbench"
    return urlunparse(parsed._replace(path=f"/{name}")), urlunparse(parsed._replace(path="/postgres")), name


@dataclass
class Timings:
    """Filled by :func:`measured`: database time, statements, head-lock window."""

    db_seconds: float = 0.0
    statements: int = 0
    lock_taken: float | None = None
    committed: float | None = None
    copy_seconds: float = 0.0
    commit_seconds: float = 0.0

    @property
    def lock_ms(self) -> float:
        if self.lock_taken is None or self.committed is None:
            return 0.0
        return (self.committed - self.lock_taken) * 1000


class measured:
    """Time every statement and the COMMIT of the default connection; note when the chain
    head is first locked in the transaction and when the COMMIT returned."""

    def __init__(self) -> None:
        from django.db import connection

        self.connection = connection
        self.timings = Timings()

    def _execute(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            ended = time.perf_counter()
            self.timings.db_seconds += ended - started
            self.timings.statements += 1
            if self.timings.lock_taken is None and "FOR UPDATE" in sql and "lookups_auditchainhead" in sql:
                self.timings.lock_taken = started  # held from here (at the latest) until COMMIT

    def __enter__(self) -> Timings:
        connection = self.connection
        self._wrapper = connection.execute_wrapper(self._execute)
        self._wrapper.__enter__()
        original = connection._commit

        def timed_commit():
            started = time.perf_counter()
            try:
                return original()
            finally:
                ended = time.perf_counter()
                self.timings.db_seconds += ended - started
                self.timings.commit_seconds += ended - started
                self.timings.committed = ended

        self._original_commit = original
        connection._commit = timed_commit
        # COPY (audit_record_many on PostgreSQL) bypasses execute wrappers: time it as a whole
        from lookups import audit

        self._original_insert = original_insert = audit._insert

        def timed_insert(rows):
            started = time.perf_counter()
            try:
                return original_insert(rows)
            finally:
                self.timings.db_seconds += time.perf_counter() - started
                self.timings.copy_seconds += time.perf_counter() - started
                self.timings.statements += 1

        audit._insert = timed_insert
        return self.timings

    def __exit__(self, *exc) -> None:
        from lookups import audit

        self.connection._commit = self._original_commit
        audit._insert = self._original_insert
        self._wrapper.__exit__(*exc)


def seed(rows: int):
    """One clinic, a staff member, ``rows`` elders; returns (actor, clinic, id numbers)."""
    from guardians import crypto, id_numbers
    from guardians.models import Clinic, Person, StaffMembership, User
    from lookups.audit import Actor

    started = time.monotonic()
    clinic = Clinic.objects.create(name="Bench clinic")
    staff = User.objects.create(username="bench-staff", is_staff=True)
    StaffMembership.objects.create(user=staff, clinic=clinic, role=StaffMembership.Role.STAFF)
    # distinct valid numbers: the birth date varies with the row, the 3-digit serial too
    numbers = [
        id_numbers.make_valid(
            f"110101{1930 + (i // 1000) % 60:04d}{1 + (i // 28) % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
        )
        for i in range(rows)
    ]
    assert len(set(numbers)) == rows
    people = []
    for i, number in enumerate(numbers):
        number, birth_date = id_numbers.validate(number)
        people.append(
            Person(
                clinic=clinic,
                full_name=f"Elder {i}",
                id_number_hash=crypto.keyed_hash(number),
                id_number_ciphertext=crypto.encrypt(number.encode()),
                id_number_masked=id_numbers.mask(number),
                birth_date=birth_date,
                is_elder=True,
            )
        )
    Person.objects.bulk_create(people, batch_size=2000)
    print(f"seeded 1 clinic and {rows:,} elders in {time.monotonic() - started:.1f} s", flush=True)
    return Actor.for_user(staff), clinic, numbers


def write_csv(path: Path, numbers: list[str], day: int) -> bytes:
    lines = [HEADER]
    for i, number in enumerate(numbers):
        kind = ("nucleic_acid", "antigen", "antibody")[i % 3]
        lines.append(
            f"{number},{kind},2026-01-{day:02d} {8 + i % 9:02d}:{i % 60:02d},Sampling point {i % 7},"
            f"City Central Laboratory,{'Negative' if i % 11 else 'Positive'},2026-01-{day + 1:02d} 08:00"
        )
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return data


def import_per_row(*, actor, clinic, data: bytes):
    """The write path before batching: one audited ``result_record`` per row."""
    from django.db import transaction

    from lookups import services
    from lookups.audit import audit_record

    rows, elders = services.results_import_check(actor=actor, clinic=clinic, data=data)
    with transaction.atomic():
        created = [
            services.result_record(
                actor=actor,
                elder=elders[row.id_hash],
                kind=row.kind,
                sampled_at=row.sampled_at,
                site=row.site,
                lab=row.lab,
                result=row.result,
                reported_at=row.reported_at,
            )
            for row in rows
        ]
        audit_record(
            actor=actor,
            action="results.imported",
            outcome="ok",
            clinic=clinic,
            details={"rows": len(created), "results": [r.pk for r in created]},
        )
    return created


def run(label: str, importer, **kwargs) -> Timings:
    started = time.perf_counter()
    with measured() as timings:
        created = importer(**kwargs)
    wall = time.perf_counter() - started
    print(
        f"{label:<28} {len(created):>6,} rows  wall {wall:6.2f} s  DB {timings.db_seconds:6.3f} s"
        f"  {timings.statements:>6,} statements  head lock held {timings.lock_ms:8.1f} ms"
        f"  (audit COPY {timings.copy_seconds * 1000:.0f} ms, COMMIT {timings.commit_seconds * 1000:.0f} ms)",
        flush=True,
    )
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    args = parser.parse_args()

    bench_url, admin_url, name = bench_database_url()
    create_database(admin_url, name, reuse=False)
    os.environ["DATABASE_URL"] = bench_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    import tempfile

    import django

    django.setup()
    from django.core.management import call_command

    from lookups import services
    from lookups.audit import verify_chain

    try:
        call_command("migrate", verbosity=0)
        actor, clinic, numbers = seed(args.rows)
        with tempfile.TemporaryDirectory() as folder:
            before_csv = write_csv(Path(folder) / "before.csv", numbers, day=5)
            after_csv = write_csv(Path(folder) / "after.csv", numbers, day=12)
            print(f"CSV files: {len(before_csv):,} and {len(after_csv):,} bytes, {args.rows:,} rows each", flush=True)
            before = run("before: per-row audit", import_per_row, actor=actor, clinic=clinic, data=before_csv)
            after = run(
                "after: audit_record_many",
                services.results_import_csv,
                actor=actor,
                clinic=clinic,
                data=after_csv,
            )
        checked, broken = verify_chain()
        print(f"chain: {checked:,} events verified" + (f", BROKEN at #{broken.sequence}" if broken else ", intact"))
        print(
            f"after vs targets: DB {after.db_seconds:.3f} s (target <= {DB_TARGET_S:.0f} s), "
            f"head lock {after.lock_ms:.1f} ms (target <= {LOCK_TARGET_MS:.0f} ms); "
            f"before: DB {before.db_seconds:.3f} s, head lock {before.lock_ms:.1f} ms"
        )
        ok = after.db_seconds <= DB_TARGET_S and after.lock_ms <= LOCK_TARGET_MS and broken is None
        print("PASS" if ok else "FAIL")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(admin_url, name)


if __name__ == "__main__":
    main()
