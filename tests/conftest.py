import os
import time
from pathlib import Path

import pgtrigger
import pytest
from django.conf import settings
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from guardians import services as guardian_services
from lookups.audit import Actor
from tests import factories

IN_CI = os.environ.get("CI", "").lower() == "true"


def faces_dir() -> Path:
    return Path(settings.KINGUARD_FACES_DIR)


def require_faces() -> Path:
    """The labeled face set, or skip (fail under CI=true, where it must be present)."""
    root = faces_dir()
    if not (root / "manifest.csv").is_file():
        message = f"face set not found at {root} (set KINGUARD_FACES_DIR)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return root


def face_bytes(relative: str) -> bytes:
    return (require_faces() / relative).read_bytes()


def totp_now(device: TOTPDevice, offset_steps: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


AUDIT_TRUNCATE_GUARDS = ("lookups.AuditEvent:audit_event_no_truncate", "lookups.AuditChainHead:audit_head_no_truncate")


@pytest.fixture(autouse=True, scope="session")
def _flush_lifts_audit_truncate_guards():
    """Transactional tests end with ``flush`` (TRUNCATE of every table); PostgreSQL refuses
    TRUNCATE on the audit tables, so only the test flush runs with those two guards ignored."""
    from django.core.management.commands import flush

    original = flush.Command.handle

    def handle(self, *args, **options):
        with pgtrigger.ignore(*AUDIT_TRUNCATE_GUARDS):
            return original(self, *args, **options)

    flush.Command.handle = handle
    yield
    flush.Command.handle = original


@pytest.fixture(autouse=True)
def _isolated_storage(tmp_path, settings):
    settings.PROBE_DIR = tmp_path / "probes"
    settings.PRIVATE_STORAGE_ROOT = tmp_path / "private"
    settings.KINGUARD_AUDIT_HEAD_DIR = tmp_path / "audit-heads"


@pytest.fixture
def clinic(db):
    return factories.ClinicFactory(name="Riverside")


@pytest.fixture
def other_clinic(db):
    return factories.ClinicFactory(name="Hillside")


@pytest.fixture
def staff(clinic):
    return factories.make_staff(clinic)


@pytest.fixture
def manager(clinic):
    return factories.make_staff(clinic, role="manager")


@pytest.fixture
def elder(staff, clinic):
    return factories.make_person(staff, clinic, "Zhang Xiuying", elder=True)


@pytest.fixture
def guardian(staff, clinic):
    return factories.make_person(staff, clinic, "Li Wei", guardian=True, login=True)


@pytest.fixture
def guardian_device(guardian):
    return guardian_services.totp_device_create(actor=Actor.system("test"), user=guardian.user, confirmed=True)


@pytest.fixture
def authorization(staff, manager, guardian, elder):
    return factories.make_active_authorization(staff, manager, guardian, elder)


@pytest.fixture
def results(staff, elder):
    return [factories.make_result(staff, elder), factories.make_result(staff, elder, kind="antigen")]


@pytest.fixture
def enrolled_guardian(guardian, staff):
    """Guardian enrolled from three photos of person_01 (Obama); 04.jpg stays out (camera clip source)."""
    images = [face_bytes(f"person_01/0{i}.jpg") for i in (1, 2, 3)]
    factories.enroll_face(staff, guardian, images)
    return guardian


@pytest.fixture
def guardian_client(client, guardian):
    client.force_login(guardian.user)
    return client
