import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from guardians.models import Authorization, FaceEnrollment, Person
from lookups.models import AuditEvent, TestResult

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent(settings, tmp_path):
    settings.KINGUARD_FACES_DIR = tmp_path / "no-faces-here"
    call_command("seed_demo")
    counts = (Person.objects.count(), Authorization.objects.count(), TestResult.objects.count())
    call_command("seed_demo")
    assert (Person.objects.count(), Authorization.objects.count(), TestResult.objects.count()) == counts
    assert Authorization.objects.filter(status="active").count() == 2
    assert not FaceEnrollment.objects.exists()


def test_verify_audit_passes_and_fails(settings, tmp_path):
    from django.db import connection

    settings.KINGUARD_FACES_DIR = tmp_path
    call_command("seed_demo")
    call_command("verify_audit")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # an attacker with table-owner rights
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE lookups_auditevent DISABLE TRIGGER USER")
        cursor.execute("UPDATE lookups_auditevent SET outcome = 'forged' WHERE sequence = 3")
    with pytest.raises(SystemExit) as exited:
        call_command("verify_audit")
    assert exited.value.code == 1


def test_totp_code_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("totp_code", "staff")


def test_enroll_face_command(settings, staff, guardian):
    from tests.helpers import require_faces

    root = require_faces()
    call_command("enroll_face", guardian.user.username, str(root / "person_02/01.jpg"), "--staff", staff.username)
    assert FaceEnrollment.objects.get(person=guardian).sample_count == 1
    with pytest.raises(CommandError, match="face"):
        call_command(
            "enroll_face", guardian.user.username, str(root / "special/no_face_dogs.jpg"), "--staff", staff.username
        )
    assert AuditEvent.objects.filter(action="face.enrolled").count() == 1
