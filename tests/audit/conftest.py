import time

import pytest
from django.db import connection
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.middleware import SESSION_OTP_AT
from guardians.models import StaffMembership
from lookups.oversight.sms import LocmemSmsBackend
from tests import factories
from tests.conftest import IN_CI


def require_postgresql() -> None:
    """Skip on SQLite (fail under CI=true, where the suite must run on PostgreSQL)."""
    if connection.vendor != "postgresql":
        message = "needs PostgreSQL (set DATABASE_URL=postgres://...)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def otp_login(client, user) -> None:
    """Sign ``user`` in with a verified OTP device, as OTPAdminSite requires."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="test", confirmed=True
    )
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[SESSION_OTP_AT] = time.time()  # as right after signing in with a code
    session.save()


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
