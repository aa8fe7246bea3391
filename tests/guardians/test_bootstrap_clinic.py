"""First run: ``bootstrap_clinic`` creates the clinic, the manager and an authenticator, once."""

import io
import re

import pytest
from django.core.management import call_command

from guardians.models import Clinic, StaffMembership, User
from lookups.models import AuditEvent


def _run(*extra: str) -> str:
    out = io.StringIO()
    call_command("bootstrap_clinic", "--name", "Harbour Clinic", "--manager", "boss", *extra, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_first_run_creates_clinic_manager_device_and_prints_link_and_qr(client):
    output = _run("--phone", "+86 21 5555 0100", "--base-url", "https://kg.example")
    clinic = Clinic.objects.get(name="Harbour Clinic")
    boss = User.objects.get(username="boss")
    assert clinic.phone == "+86 21 5555 0100"
    assert StaffMembership.objects.filter(user=boss, clinic=clinic, role="manager").exists()
    assert boss.totpdevice_set.filter(confirmed=True).count() == 1
    assert not boss.has_usable_password()
    assert "otpauth://totp/" in output and "█" in output
    link = re.search(r"https://kg\.example(/accounts/set-password/\S+/)", output).group(1)
    page = client.get(link, follow=True)
    assert page.status_code == 200 and b"password" in page.content.lower()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"clinic.created", "staff.role_granted", "otp_device.created", "account.set_password_link_issued"} <= actions


@pytest.mark.django_db
def test_rerun_creates_nothing_new_and_stops_once_password_is_set():
    _run()
    second = _run()
    assert "already there" in second
    assert Clinic.objects.filter(name="Harbour Clinic").count() == 1
    boss = User.objects.get(username="boss")
    assert boss.totpdevice_set.count() == 1
    assert AuditEvent.objects.filter(action="clinic.created").count() == 1
    boss.set_password("a-long-enough-password-1")
    boss.save()
    third = _run()
    assert "already set a password" in third and "otpauth://" not in third
