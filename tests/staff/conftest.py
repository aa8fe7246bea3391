"""Fixtures for the staff workspace: OTP-verified clients per role and clinic."""

import pytest

from tests import factories
from tests.helpers import verified_client


@pytest.fixture
def auditor(clinic):
    return factories.make_staff(clinic, role="auditor")


@pytest.fixture
def other_staff(other_clinic):
    return factories.make_staff(other_clinic)


@pytest.fixture
def staff_client(staff):
    return verified_client(staff)


@pytest.fixture
def manager_client(manager):
    return verified_client(manager)


@pytest.fixture
def other_client(other_staff):
    return verified_client(other_staff)
