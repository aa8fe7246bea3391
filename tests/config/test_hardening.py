"""Login lockout, the trusted-proxy IP rule, session limits, security headers, health."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from config.client_ip import client_ip
from tests.config.test_settings import FULL_ENV
from tests.helpers import request_from

REPO = Path(__file__).resolve().parents[2]


# --- client IP behind proxies -------------------------------------------------------------


def test_without_trusted_proxies_forwarded_for_is_ignored(settings):
    settings.KINGUARD_TRUSTED_PROXIES = []
    assert client_ip(request_from("203.0.113.9", "1.2.3.4")) == "203.0.113.9"


def test_untrusted_peer_cannot_claim_another_address(settings):
    settings.KINGUARD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request_from("198.51.100.7", "10.1.1.1, 1.2.3.4")) == "198.51.100.7"


def test_rightmost_untrusted_hop_is_the_client(settings):
    settings.KINGUARD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    # The client forged "6.6.6.6" on the left; the proxy appended the real peer 198.51.100.20.
    assert client_ip(request_from("10.0.0.2", "6.6.6.6, 198.51.100.20")) == "198.51.100.20"
    assert client_ip(request_from("10.0.0.2", "6.6.6.6, 198.51.100.20, 10.0.0.9")) == "198.51.100.20"


def test_malformed_hop_stops_the_walk(settings):
    settings.KINGUARD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_ip(request_from("10.0.0.2", "1.2.3.4, not-an-ip")) == "10.0.0.2"


# --- lockout ------------------------------------------------------------------------------


def _fail_login(client, username, ip):
    return client.post(reverse("login"), {"username": username, "password": "wrong password"}, REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_lockout_after_five_failures_and_its_expiry(client, guardian, settings):
    username = guardian.user.username
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _fail_login(client, username, "198.51.100.1").status_code == 200
    assert _fail_login(client, username, "198.51.100.1").status_code == 429  # the 5th failure locks
    response = client.post(
        reverse("login"), {"username": username, "password": "correct horse battery"}, REMOTE_ADDR="198.51.100.1"
    )
    assert response.status_code == 429
    assert "paused" in response.content.decode()
    # The real user on another network is not locked out by the attacker.
    response = client.post(
        reverse("login"), {"username": username, "password": "correct horse battery"}, REMOTE_ADDR="192.0.2.50"
    )
    assert response.status_code == 302
    client.logout()
    # The lock ends by itself.
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + dt.timedelta(seconds=1)):
        response = client.post(
            reverse("login"), {"username": username, "password": "correct horse battery"}, REMOTE_ADDR="198.51.100.1"
        )
    assert response.status_code == 302


@pytest.mark.django_db
def test_one_ip_spraying_many_accounts_is_locked(client, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        _fail_login(client, f"someone{n}", "198.51.100.2")
    assert _fail_login(client, "someone-else", "198.51.100.2").status_code == 429


@pytest.mark.django_db
def test_forged_forwarded_for_does_not_escape_the_lock(client, settings):
    settings.KINGUARD_TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(settings.AXES_FAILURE_LIMIT + 1):
        response = client.post(
            reverse("login"),
            {"username": f"u{n}", "password": "x"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"{n}.{n}.{n}.{n}, 198.51.100.3",
        )
    assert response.status_code == 429


# --- sessions -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_session_ends_after_30_idle_minutes(guardian_client):
    url = reverse("lookups:dashboard")
    assert guardian_client.get(url).status_code == 200
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=29)):
        assert guardian_client.get(url).status_code == 200
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=29 + 31)):
        response = guardian_client.get(url)
    assert response.status_code == 302 and reverse("login") in response.url


@pytest.mark.django_db
def test_session_ends_after_12_hours_even_when_active(guardian_client):
    url = reverse("lookups:dashboard")
    start = timezone.now()
    for minutes in range(0, 12 * 60, 25):
        with time_machine.travel(start + dt.timedelta(minutes=minutes)):
            assert guardian_client.get(url).status_code == 200
    with time_machine.travel(start + dt.timedelta(hours=12, minutes=1)):
        response = guardian_client.get(url)
    assert response.status_code == 302


# --- headers and health -------------------------------------------------------------------


@pytest.mark.django_db
def test_security_headers(client):
    response = client.get(reverse("login"))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Permissions-Policy"].startswith("camera=(self)")
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_pages_have_no_inline_scripts(guardian_client, authorization):
    import re

    page = guardian_client.get(reverse("lookups:dashboard")).content.decode()
    for tag in re.findall(r"<script[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_check_deploy_passes_with_production_settings():
    # The browser tests set DJANGO_ALLOW_ASYNC_UNSAFE for Playwright; a deployment never has it.
    env = {k: v for k, v in os.environ.items() if k not in FULL_ENV and k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(FULL_ENV, DJANGO_SETTINGS_MODULE="config.settings.production")
    env["SECRET_KEY"] = "k9$Qz!v2Lr#8pT@w5Nc^1Hy&6Jm*3Bd(7Gf)0Xs_4Ua+Ve=Zo-LongEnough"
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
