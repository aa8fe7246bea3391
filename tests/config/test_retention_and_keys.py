import datetime as dt
import os
import time

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.utils import timezone

from guardians import crypto, services
from guardians.key_rotation import ROTATED_FIELDS, rows_remaining
from guardians.models import FaceEnrollment
from lookups.audit import Actor, verify_chain
from lookups.models import AuditEvent, FaceCheck, LookupRequest
from lookups.retention import retention_apply
from tests import factories
from tests.helpers import start_lookup

pytestmark = pytest.mark.django_db


def _enroll(person, staff):
    from tests import factories
    from tests.helpers import face_bytes

    return factories.enroll_face(staff, person, [face_bytes("person_02/01.jpg")], consent_text="Consent.")


def test_retention_deletes_exactly_what_the_policy_says(
    guardian_client, authorization, staff, manager, clinic, settings
):
    now = timezone.now()
    old = start_lookup(guardian_client, authorization.elder)
    recent = start_lookup(guardian_client, authorization.elder)
    unfinished = start_lookup(guardian_client, authorization.elder)
    LookupRequest.objects.filter(pk=old.pk).update(
        state="expired", ended_at=now - dt.timedelta(days=settings.KINGUARD_RETENTION_LOOKUP_DAYS + 1)
    )
    FaceCheck.objects.create(lookup=old, state="done", outcome="match")
    LookupRequest.objects.filter(pk=recent.pk).update(state="expired", ended_at=now - dt.timedelta(days=1))
    LookupRequest.objects.filter(pk=unfinished.pk).update(created_at=now - dt.timedelta(days=400))

    # Templates: an active guardian keeps theirs; a former guardian idle for long loses it;
    # an elder with a login (self-lookup) keeps theirs.
    active_template = _enroll(authorization.guardian, staff)
    former = factories.make_person(staff, clinic, "Former Guardian", guardian=True)
    elder_two = factories.make_person(staff, clinic, "Other Elder", elder=True)
    ended = factories.make_active_authorization(staff, manager, former, elder_two)
    services.authorization_revoke(actor=Actor.for_user(manager), authorization_id=ended.pk, reason="Moved away")
    former_template = _enroll(former, staff)
    self_elder = factories.make_person(staff, clinic, "Self Elder", elder=True, login=True)
    self_template = _enroll(self_elder, staff)
    long_ago = now - dt.timedelta(days=settings.KINGUARD_RETENTION_FACE_TEMPLATE_DAYS + 1)
    FaceEnrollment.objects.update(enrolled_at=long_ago)
    type(ended).objects.filter(pk=ended.pk).update(ended_at=long_ago)

    probe_dir = settings.PROBE_DIR
    probe_dir.mkdir(parents=True, exist_ok=True)
    stale, fresh = probe_dir / "stale.npz", probe_dir / "fresh.npz"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old_time = time.time() - settings.KINGUARD_RETENTION_PROBE_MINUTES * 60 - 5
    os.utime(stale, (old_time, old_time))

    report = retention_apply(now=now)

    assert (report.lookups_deleted, report.templates_deleted, report.probes_deleted) == (1, 1, 1)
    assert set(LookupRequest.objects.values_list("pk", flat=True)) == {recent.pk, unfinished.pk}
    assert not FaceCheck.objects.filter(lookup_id=old.pk).exists()
    assert set(FaceEnrollment.objects.values_list("pk", flat=True)) == {active_template.pk, self_template.pk}
    assert not FaceEnrollment.objects.filter(pk=former_template.pk).exists()
    assert not stale.exists() and fresh.exists()
    # The audit trail of the deleted lookup stays and the chain still verifies.
    assert AuditEvent.objects.filter(target_id=str(old.pk), action="lookup.started").exists()
    assert verify_chain()[1] is None
    # Running again deletes nothing more.
    assert retention_apply(now=now) == type(report)(0, 0, 0)


def test_key_rotation_round_trip(settings, staff, clinic, guardian):
    _enroll(guardian, staff)
    person_token = bytes(guardian.id_number_ciphertext)
    old_key = settings.KINGUARD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.KINGUARD_ENCRYPTION_KEYS = [new_key, old_key]
    assert rows_remaining() == 2  # the guardian's ID number and face template
    call_command("rotate_keys", "--batch-size", "1")
    assert rows_remaining() == 0
    settings.KINGUARD_ENCRYPTION_KEYS = [new_key]  # old key retired
    guardian.refresh_from_db()
    assert bytes(guardian.id_number_ciphertext) != person_token
    assert crypto.decrypt(guardian.id_number_ciphertext).decode()[-4:] == guardian.id_number_masked[-4:]
    assert services.face_template_of(guardian).shape == (128,)
    assert AuditEvent.objects.filter(action="keys.rotated").count() == len(ROTATED_FIELDS)  # one per model
    call_command("rotate_keys")  # resumable / idempotent: nothing left to do
    assert AuditEvent.objects.filter(action="keys.rotated").count() == 2 * len(ROTATED_FIELDS)
