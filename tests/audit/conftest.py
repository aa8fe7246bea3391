import pytest

from guardians.models import StaffMembership
from lookups.oversight.sms import LocmemSmsBackend
from tests import factories
from tests.helpers import otp_login


@pytest.fixture(autouse=True)
def _empty_sms_outbox():
    LocmemSmsBackend.outbox.clear()
    yield
    LocmemSmsBackend.outbox.clear()


@pytest.fixture
def auditor(clinic):
    return factories.make_staff(clinic, role=StaffMembership.Role.AUDITOR)


@pytest.fixture
def other_auditor(other_clinic):
    return factories.make_staff(other_clinic, role=StaffMembership.Role.AUDITOR)


@pytest.fixture
def superuser(db):
    return factories.UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def auditor_client(client, auditor):
    otp_login(client, auditor)
    return client
