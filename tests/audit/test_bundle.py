"""The verification bundle and the standalone verifier (issue 13): an unaltered bundle
verifies without Django or a database; an altered cell, a dropped row and two reordered
rows are each detected; a clinic-scoped bundle is gap-free through link rows."""

import datetime as dt
import json
import os
import pathlib
import subprocess
import sys
import zoneinfo

import pytest
import time_machine
from django.urls import reverse

from lookups.audit import Actor, audit_record
from lookups.audit_verify import BundleError, verify_lines
from tests.helpers import otp_login

pytestmark = pytest.mark.django_db
LOCAL = zoneinfo.ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 5, 10)
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _events(elder, other, n=4):
    with time_machine.travel(dt.datetime(2026, 5, 10, 9, tzinfo=LOCAL), tick=True):
        for i in range(n):
            audit_record(
                actor=Actor(user=None, label="guardian", ip="198.51.100.9", user_agent="=cmd|' /C calc'!A0"),
                action="results.viewed",
                outcome="shown",
                subject=elder,
                clinic=elder.clinic,
                details={"i": i, "名字": "王秀英"},
            )
            audit_record(actor=Actor.system("t"), action="lookup.started", subject=other, clinic=other.clinic)


def _bundle(client) -> list[str]:
    response = client.get(
        reverse("admin:lookups_auditevent_export"), {"since": str(DAY), "until": str(DAY), "format": "jsonl"}
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    return b"".join(response.streaming_content).decode().splitlines(keepends=True)


@pytest.fixture
def foreign(staff, other_clinic):
    from tests import factories

    return factories.make_person(factories.make_staff(other_clinic), other_clinic, "Hillside Elder", elder=True)


def test_bundle_verifies_standalone_without_django(client, superuser, elder, foreign, tmp_path):
    _events(elder, foreign)
    otp_login(client, superuser)
    lines = _bundle(client)
    header = json.loads(lines[0])
    assert header["last_sequence"] - header["first_sequence"] + 1 == len(lines) - 1 == 8
    assert all(json.loads(line)["type"] == "event" for line in lines[1:])
    path = tmp_path / "bundle.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO", "DATABASE"))}
    code = (
        "import sys, lookups.audit_verify as v; r = v.main(sys.argv[1:]); "
        "assert 'django' not in sys.modules; sys.exit(r)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=False, cwd=ROOT
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("VERIFIED")
    path.write_text("".join(lines[:3] + lines[4:]), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "lookups.audit_verify", str(path)], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert run.returncode == 1 and run.stdout.startswith("NOT VERIFIED")


def _altered(lines: list[str], index: int, **changes) -> list[str]:
    row = json.loads(lines[index])
    row.update(changes)
    return lines[:index] + [json.dumps(row, ensure_ascii=False) + "\n"] + lines[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda lines: _altered(lines, 2, outcome="denied"), id="altered-cell"),
        pytest.param(lambda lines: _altered(lines, 3, details={"i": 99, "名字": "王秀英"}), id="altered-details"),
        pytest.param(
            lambda lines: _altered(lines, 4, created_at="2026-05-10T00:00:00.000000+00:00"), id="altered-time"
        ),
        pytest.param(lambda lines: lines[:3] + lines[4:], id="dropped-row"),
        pytest.param(lambda lines: lines[:-1], id="dropped-last-row"),
        pytest.param(lambda lines: [lines[0]] + lines[2:], id="dropped-first-row"),
        pytest.param(lambda lines: lines[:2] + [lines[3], lines[2]] + lines[4:], id="reordered-rows"),
        pytest.param(lambda lines: lines + [lines[-1]], id="duplicated-row"),
    ],
)
def test_each_tampering_is_detected(client, superuser, elder, foreign, tamper):
    _events(elder, foreign)
    otp_login(client, superuser)
    lines = _bundle(client)
    verify_lines(lines)
    with pytest.raises(BundleError):
        verify_lines(tamper(lines))


def test_clinic_scoped_bundle_is_gap_free_and_hides_other_clinics(auditor_client, elder, foreign):
    _events(elder, foreign)
    lines = _bundle(auditor_client)
    header = verify_lines(lines)
    rows = [json.loads(line) for line in lines[1:]]
    assert len(rows) == header["last_sequence"] - header["first_sequence"] + 1
    assert {row["type"] for row in rows} == {"event", "link"}
    links = [row for row in rows if row["type"] == "link"]
    assert links and all(set(row) == {"type", "sequence", "prev_hash", "hash"} for row in links)
    assert all(row["clinic"] == elder.clinic_id for row in rows if row["type"] == "event")
    with pytest.raises(BundleError):  # a link cannot be dropped to hide that it exists
        verify_lines([lines[0]] + [line for line in lines[1:] if json.loads(line)["type"] == "event"])
