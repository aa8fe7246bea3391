"""Fixtures for the staff workspace: OTP-verified clients per role and clinic."""

import time

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.middleware import SESSION_OTP_AT
from guardians import services as guardian_services
from lookups.audit import Actor
from tests import factories


def device_of(user) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = guardian_services.totp_device_create(actor=Actor.system("test"), user=user, confirmed=True)
    return device


def verified_client(user) -> Client:
    """A client signed in as ``user`` whose session was verified with their TOTP device."""
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device_of(user).persistent_id
    session[SESSION_OTP_AT] = time.time()  # as right after signing in with a code
    session.save()
    return client


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
