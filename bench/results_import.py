"""Benchmark: a 5,000-row results CSV import on PostgreSQL, per-row audit path vs batched.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
        flock /tmp/kg-heavy.lock .venv/bin/python bench/results_import.py

Creates its own database ``<name of DATABASE_URL's database>_importbench`` (dropped at the
end unless ``--keep``), migrates it, registers N elders at one clinic (bulk insert with real
keyed hashes and encrypted ID numbers, as ``person_register`` stores them) and writes real
CSV files of N rows (one per elder; each file a week later, so it is not a re-import). Then,
in one run:

* **before**: the checks of ``results_import_csv`` followed by the old write path, one
  ``result_record`` per row (each taking the chain-head lock and writing its own event) and
  the ``results.imported`` event;
* **after**: ``results_import_csv`` as it is now (results bulk-inserted, then all events
  appended by ``audit_record_many``: prepared before the head lock, one COPY under it),
  repeated ``--repeat`` times (median and worst printed);
* **another clinic meanwhile**: while one more import runs, a second connection records a
  sign-in event for a *second* clinic every 5 ms (``audit_record``, its own transaction, as
  ``staff_sign_in`` does); its longest and median wait are printed beside the same probe
  with no import running: what one clinic's bulk work costs another on the single chain.

For each import it prints the wall time, the **database time** (time spent in every SQL
statement, the COPY and the COMMIT, measured around the driver calls), the number of
statements, and the **head-lock hold time**: from the ``SELECT ... FOR UPDATE`` of the chain
head until the COMMIT returned (the lock is released at commit). It then verifies the whole
chain. Targets: <= 1 s database time, <= 100 ms lock. The batched figures before the
lock-window work (commit 28623a8) are printed for comparison as they were measured then.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audit_admin import create_database, drop_database  # noqa: E402

DB_TARGET_S = 1.0
LOCK_TARGET_MS = 100.0
#: the batched path at commit 28623a8 (this bench, same machine), before the lock-window work
PREVIOUS_BATCH = {"db_s": 0.476, "lock_ms": 288.5, "copy_ms": 124, "commit_ms": 118}
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

        self._original_copy = original_copy = audit._copy

        @contextlib.contextmanager
        def timed_copy():
            started = time.perf_counter()
            try:
                with original_copy() as write:
                    yield write
            finally:
                self.timings.db_seconds += time.perf_counter() - started
                self.timings.copy_seconds += time.perf_counter() - started
                self.timings.statements += 1

        audit._copy = timed_copy
        return self.timings

    def __exit__(self, *exc) -> None:
        from lookups import audit

        self.connection._commit = self._original_commit
        audit._copy = self._original_copy
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
    """One file sampled ``day`` days after 2026-01-01 (any number of files, a new day each)."""
    sampled = dt.date(2026, 1, 1) + dt.timedelta(days=day)
    reported = sampled + dt.timedelta(days=1)
    lines = [HEADER]
    for i, number in enumerate(numbers):
        kind = ("nucleic_acid", "antigen", "antibody")[i % 3]
        lines.append(
            f"{number},{kind},{sampled} {8 + i % 9:02d}:{i % 60:02d},Sampling point {i % 7},"
            f"City Central Laboratory,{'Negative' if i % 11 else 'Positive'},{reported} 08:00"
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
        f"  (hash + COPY {timings.copy_seconds * 1000:.0f} ms, COMMIT {timings.commit_seconds * 1000:.0f} ms)",
        flush=True,
    )
    return timings


def probe_sign_ins(clinic_id: int, ready, stop, results) -> None:
    """In a separate process (no shared GIL): a sign-in event for another clinic every 5 ms,
    each in its own transaction as ``staff_sign_in`` writes it; sends (start, end) pairs."""
    import django

    django.setup()
    from django.db import connection, transaction

    from guardians.models import Clinic
    from lookups.audit import Actor, audit_record

    clinic = Clinic.objects.get(pk=clinic_id)
    actor = Actor(user=None, label="other-clinic-staff", ip="192.0.2.7", user_agent="bench probe")
    spans = []
    ready.set()
    while not stop.is_set():
        started = time.monotonic()
        with transaction.atomic():
            audit_record(actor=actor, action="login.succeeded", outcome="ok", clinic=clinic)
        spans.append((started, time.monotonic()))
        stop.wait(0.005)
    connection.close()
    results.put(spans)


def waits_within(spans, start: float, end: float) -> list[float]:
    return sorted((e - s) * 1000 for s, e in spans if s < end and e > start)


def other_clinic_waits(clinic, *, actor, importing_clinic, data: bytes):
    """Probe sign-ins at ``clinic`` for 1 s alone, then during one import at the other clinic."""
    import multiprocessing

    from django.db import connections

    from lookups import services

    connections.close_all()  # the probe process opens its own connection
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=probe_sign_ins, args=(clinic.pk, ready, stop, results))
    process.start()
    ready.wait(60)
    quiet_start = time.monotonic()
    time.sleep(1.0)
    quiet_end = busy_start = time.monotonic()
    timings = run("after, probed", services.results_import_csv, actor=actor, clinic=importing_clinic, data=data)
    busy_end = time.monotonic()
    time.sleep(0.05)
    stop.set()
    spans = results.get(timeout=60)
    process.join(60)
    return waits_within(spans, quiet_start, quiet_end), waits_within(spans, busy_start, busy_end), timings


def _median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="batched imports to time (each a new file)")
    parser.add_argument("--skip-per-row", action="store_true", help="skip the slow per-row 'before' path")
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

    from guardians.models import Clinic
    from lookups import services
    from lookups.audit import verify_chain

    try:
        call_command("migrate", verbosity=0)
        actor, clinic, numbers = seed(args.rows)
        other = Clinic.objects.create(name="Other clinic")
        days = itertools.count(2, 3)  # a new sampling day per file
        before = None
        with tempfile.TemporaryDirectory() as folder:

            def csv_file() -> bytes:
                return write_csv(Path(folder) / "import.csv", numbers, day=next(days))

            if not args.skip_per_row:
                data = csv_file()
                print(f"CSV files: {len(data):,} bytes, {args.rows:,} rows each", flush=True)
                before = run("before: per-row audit", import_per_row, actor=actor, clinic=clinic, data=data)
            after = [
                run(f"after: batch #{i + 1}", services.results_import_csv, actor=actor, clinic=clinic, data=csv_file())
                for i in range(args.repeat)
            ]
            quiet, busy, probed = other_clinic_waits(other, actor=actor, importing_clinic=clinic, data=csv_file())
        after.append(probed)
        checked, broken = verify_chain()
        print(f"chain: {checked:,} events verified" + (f", BROKEN at #{broken.sequence}" if broken else ", intact"))
        db = [t.db_seconds for t in after]
        lock = [t.lock_ms for t in after]
        print(
            f"other clinic's sign-in (audit_record every 5 ms): alone median {_median(quiet):.1f} ms, "
            f"max {max(quiet, default=0):.1f} ms ({len(quiet)} sign-ins); during the import median "
            f"{_median(busy):.1f} ms, max {max(busy, default=0):.1f} ms ({len(busy)} sign-ins)"
        )
        prev = PREVIOUS_BATCH
        print(
            f"previous batch (28623a8, as measured then): DB {prev['db_s']:.3f} s, head lock {prev['lock_ms']:.1f} ms"
        )
        if before is not None:
            print(f"before (per-row, measured now): DB {before.db_seconds:.3f} s, head lock {before.lock_ms:.1f} ms")
        print(
            f"after ({len(after)} imports): DB median {_median(db):.3f} s, worst {max(db):.3f} s "
            f"= {max(db) / DB_TARGET_S:.2f} x the {DB_TARGET_S:.0f} s target; head lock median {_median(lock):.1f} ms, "
            f"worst {max(lock):.1f} ms = {max(lock) / LOCK_TARGET_MS:.2f} x the {LOCK_TARGET_MS:.0f} ms target; "
            f"lock {prev['lock_ms'] / max(lock):.1f} x shorter than the previous batch"
            + (f", {before.lock_ms / max(lock):.0f} x shorter than per-row" if before else "")
        )
        ok = max(db) <= DB_TARGET_S and max(lock) <= LOCK_TARGET_MS and broken is None
        print("PASS" if ok else "FAIL")
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(admin_url, name)


if __name__ == "__main__":
    main()
