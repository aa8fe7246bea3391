"""Benchmark: the desk's lab file preview (in the web request) and the confirmed import (in the
worker) for a 5,000-row file, as CSV UTF-8, CSV GB18030 and .xlsx, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/kg_lab_import \\
        flock /tmp/kg-heavy.lock .venv/bin/python bench/results_preview.py

Uses ``bench.results_import``'s throwaway database and seeding (dropped at the end). For each
format it prints the preview's time (read + every check + the preview rows + rendering the
page fragment: what the upload request does) and the file size; then it stages the UTF-8
file, confirms it and runs the worker's part (``results_import_run``: re-read, re-check, write
all rows in one transaction) and prints that time.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audit_admin import create_database, drop_database  # noqa: E402
from bench.results_import import bench_database_url, seed, write_csv  # noqa: E402


def to_xlsx(data: bytes) -> bytes:
    import csv

    import openpyxl

    workbook = openpyxl.Workbook()
    for row in csv.reader(io.StringIO(data.decode())):
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def main() -> None:
    rows = int(os.environ.get("ROWS", "5000"))
    bench_url, admin_url, name = bench_database_url()
    create_database(admin_url, name, reuse=False)
    os.environ["DATABASE_URL"] = bench_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    import django

    django.setup()
    from unittest import mock

    from django.core.management import call_command
    from django.template.loader import render_to_string
    from django.test import override_settings

    from lookups.models import TestResult
    from lookups.services import results_import_jobs

    try:
        call_command("migrate", verbosity=0)
        actor, clinic, numbers = seed(rows)
        with tempfile.TemporaryDirectory() as folder, override_settings(PRIVATE_STORAGE_ROOT=Path(folder)):
            utf8 = write_csv(Path(folder) / "a.csv", numbers, day=5)
            files = {"CSV UTF-8": utf8, "CSV GB18030": utf8.decode().encode("gb18030"), "xlsx": to_xlsx(utf8)}
            for label, data in files.items():
                started = time.monotonic()
                preview = results_import_jobs.results_import_preview(actor=actor, clinic=clinic, data=data)
                render_to_string("staff/results_preview.html", {"preview": preview})
                elapsed = time.monotonic() - started
                assert preview.ok and len(preview.rows) == rows, (preview.rejected, preview.problems[:3])
                print(f"preview {label:12} {len(data):>9,} bytes  {elapsed:6.2f} s", flush=True)
            token = results_import_jobs.results_import_stage(actor=actor, clinic=clinic, data=utf8, rows=rows)
            with mock.patch("lookups.tasks.run_results_import.delay_on_commit"):
                key = results_import_jobs.results_import_start(actor=actor, token=token)
            started = time.monotonic()
            state = results_import_jobs.results_import_run(key=key)
            elapsed = time.monotonic() - started
            print(f"worker import (re-read, re-check, write {rows:,} rows): {state} in {elapsed:.2f} s")
            assert state == "done" and TestResult.objects.count() == rows
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(admin_url, name)


if __name__ == "__main__":
    main()
