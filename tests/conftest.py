import pgtrigger
import pytest

from guardians import services as guardian_services
from lookups.audit import Actor
from tests import factories
from tests.helpers import face_bytes, lookup_at_face_step, lookup_granted

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


@pytest.fixture(autouse=True)
def _default_language():
    """The test thread's active language back to the default after each test: a test-client
    login of a user with a saved language activates it in this thread (LoginView), and a later
    test's expected message (``face_reason_message``) would come out in that language."""
    yield
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)


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


@pytest.fixture
def at_face_step(guardian_client, authorization, guardian_device, enrolled_guardian, results):
    """A lookup of the authorized elder (who has results) past its code step, the guardian enrolled."""
    return lookup_at_face_step(guardian_client, authorization.elder, guardian_device)


@pytest.fixture
def granted(guardian_client, authorization, guardian_device, enrolled_guardian, results):
    """A granted lookup of the authorized elder (code and face passed)."""
    return lookup_granted(guardian_client, authorization.elder, guardian_device)
