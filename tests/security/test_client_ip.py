"""One client IP (issue 12) and X-Forwarded-For spoofing (issue 10), behind a simulated proxy.

The audit, axes and the anomaly rules all take the address from ``config.client_ip``: only a
trusted proxy's X-Forwarded-For is believed, read right to left, skipping trusted hops.
"""

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from config.client_ip import client_ip
from lookups.audit import Actor
from lookups.models import AuditEvent
from tests.helpers import request_from, start_lookup

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.5"


@pytest.fixture
def behind_proxy(settings):
    settings.KINGUARD_TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/24"]
    return settings


def test_audit_records_the_client_behind_the_trusted_proxy(behind_proxy, guardian_client, authorization):
    guardian_client.defaults.update(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.7")
    start_lookup(guardian_client, authorization.elder)
    event = AuditEvent.objects.filter(action="lookup.started").latest("sequence")
    assert event.ip == "203.0.113.7"


def test_spoofed_header_from_an_untrusted_peer_is_ignored_in_the_audit(behind_proxy, guardian_client, authorization):
    guardian_client.defaults.update(REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR="1.2.3.4")
    start_lookup(guardian_client, authorization.elder)
    event = AuditEvent.objects.filter(action="lookup.started").latest("sequence")
    assert event.ip == "198.51.100.9"


def test_left_most_entry_is_the_clients_own_claim(behind_proxy):
    # The client wrote "1.2.3.4"; nginx appended the real peer 203.0.113.7.
    assert client_ip(request_from(PROXY, "1.2.3.4, 203.0.113.7")) == "203.0.113.7"


def test_multiple_trusted_proxies_are_skipped_right_to_left(behind_proxy):
    assert client_ip(request_from(PROXY, "1.2.3.4, 203.0.113.7, 10.0.0.9, 127.0.0.1")) == "203.0.113.7"


def test_no_proxies_configured_means_no_header_is_believed(settings):
    settings.KINGUARD_TRUSTED_PROXIES = []
    assert client_ip(request_from("127.0.0.1", "203.0.113.7")) == "127.0.0.1"


def test_malformed_hop_stops_the_walk(behind_proxy):
    assert client_ip(request_from(PROXY, "203.0.113.7, not-an-ip")) == PROXY


def test_actor_from_request_uses_the_same_rule(behind_proxy, guardian):
    request = request_from(PROXY, "9.9.9.9, 203.0.113.8")
    request.user = guardian.user
    assert Actor.from_request(request).ip == "203.0.113.8"
    spoofed = request_from("198.51.100.1", "203.0.113.8")
    spoofed.user = guardian.user
    assert Actor.from_request(spoofed).ip == "198.51.100.1"


def test_axes_uses_the_trusted_proxy_rule():
    assert django_settings.AXES_CLIENT_IP_CALLABLE == "config.client_ip.axes_client_ip"


def test_axes_locks_the_client_not_the_proxy(behind_proxy, client, guardian):
    """Failures from one client behind the proxy lock that client; another client still signs in."""
    from axes.models import AccessAttempt

    url = reverse("login")
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        client.post(
            url,
            {"username": guardian.user.get_username(), "password": "wrong"},
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR="203.0.113.50",
        )
    ips = set(AccessAttempt.objects.values_list("ip_address", flat=True))
    assert ips == {"203.0.113.50"}
