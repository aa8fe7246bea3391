"""Signed chain heads (issue 13): the head is signed and shipped off the database; a
database rewritten and re-chained after a signature is caught by verify_audit and by the
standalone verifier with the public key."""

import base64
import datetime as dt
import json
import logging
import zoneinfo
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import call_command
from django.urls import reverse

from lookups import tasks
from lookups.audit import Actor, audit_record, compute_hash
from lookups.audit_signing import heads_path, latest_signed_head
from lookups.audit_verify import BundleError, head_message, verify_lines, verify_signed_head
from lookups.models import AuditChainHead, AuditEvent
from tests.audit.test_chain import tamperable, verify_command
from tests.helpers import otp_login

pytestmark = pytest.mark.django_db


def _events(n=5):
    return [audit_record(actor=Actor.system("t"), action="lookup.started", details={"n": i}) for i in range(n)]


def _public_key() -> str:
    out, err = StringIO(), StringIO()
    call_command("audit_public_key", stdout=out, stderr=err)
    return out.getvalue().strip()


def test_the_beat_task_signs_the_head_and_ships_it(caplog):
    events = _events()
    with caplog.at_level(logging.INFO, logger="kinguard.audit.head"):
        assert tasks.sign_audit_head() == events[-1].sequence
    line = json.loads(heads_path().read_text().splitlines()[-1])
    assert line["sequence"] == events[-1].sequence and line["hash"] == events[-1].hash
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(_public_key()))
    key.verify(base64.b64decode(line["signature"]), head_message(line))  # raises if wrong
    assert any(getattr(r, "audit_head", None) == line for r in caplog.records)
    tasks.sign_audit_head()
    assert len(heads_path().read_text().splitlines()) == 2  # appended, never rewritten


def _rechain_from(sequence: int, **changes) -> None:
    """What a database administrator could do: rewrite a row and recompute every later hash."""
    with tamperable():
        AuditEvent.objects.filter(sequence=sequence).update(**changes)
        prev = AuditEvent.objects.get(sequence=sequence - 1).hash if sequence > 1 else "0" * 64
        for event in AuditEvent.objects.filter(sequence__gte=sequence).order_by("sequence"):
            event.prev_hash = prev
            event.hash = compute_hash(prev, event)
            AuditEvent.objects.filter(pk=event.pk).update(prev_hash=prev, hash=event.hash)
            prev = event.hash
        AuditChainHead.objects.filter(pk=1).update(last_hash=prev)


def test_verify_audit_catches_rows_rewritten_and_rechained_after_the_signature():
    _events(3)
    tasks.sign_audit_head()
    _events(3)
    tasks.sign_audit_head()
    assert verify_command()[0] == 0
    _rechain_from(2, outcome="forged")
    code, text = verify_command()
    assert code == 1
    assert "BROKEN at event #1" in text and "rewritten and re-chained after the last signature" in text


def test_verify_audit_names_the_first_event_after_the_last_matching_signature():
    _events(3)
    tasks.sign_audit_head()
    _events(3)
    tasks.sign_audit_head()
    _rechain_from(5, outcome="forged")
    code, text = verify_command()
    assert code == 1 and "BROKEN at event #4" in text and "(#3)" in text


def test_bundle_signed_head_checks_with_the_public_key(client, superuser):
    _events(3)
    tasks.sign_audit_head()
    otp_login(client, superuser)
    today = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).date()
    response = client.get(
        reverse("admin:lookups_auditevent_export"), {"since": str(today), "until": str(today), "format": "jsonl"}
    )
    lines = b"".join(response.streaming_content).decode().splitlines(keepends=True)
    hashes: dict[int, str] = {}
    header = verify_lines(lines, hashes)
    assert header["signed_head"] == latest_signed_head()
    assert "matches" in verify_signed_head(header, hashes, _public_key())
    other_key = base64.b64encode(b"\x01" * 32).decode()
    with pytest.raises(BundleError):
        verify_signed_head(header, hashes, other_key)
    forged = dict(header, signed_head=dict(header["signed_head"], hash="f" * 64))
    with pytest.raises(BundleError):
        verify_signed_head(forged, hashes, _public_key())
