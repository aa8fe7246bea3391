"""Which laboratory is on the other end of an MLLP connection.

MLLP carries no credentials, and a sending facility (MSH-4) is just text anyone can type, so
a peer is a configured pair: the facility it must name AND where it connects from — source
addresses (the lab's dedicated VPN/leased-line range, or the TLS-terminating proxy that
checked its client certificate) and/or the SHA-256 fingerprint of its TLS client certificate
when ``hl7_listen`` terminates TLS itself. Each peer maps to a ``LabSender`` (its clinics, its
code table, its revocation): the FHIR door's sender, so revoking it closes both doors.

Configuration: a JSON list (``hl7_listen --peers FILE`` or ``settings.KINGUARD_HL7_PEERS``)::

    [{"facility": "CITYLAB", "sender": "City Lab", "addresses": ["10.20.0.0/28"],
      "cert_sha256": "ab12…"}]
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from lookups.fhir.models import LabSender


class PeerConfigError(ValueError):
    """The peer configuration is unusable (said at start-up, not on the first message)."""


@dataclass(frozen=True)
class Peer:
    facility: str
    sender: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    cert_sha256: str = ""

    def admits(self, ip: str, cert_sha256: str) -> bool:
        """From a configured address, and with the configured certificate when one is set."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if self.networks and not any(address in net for net in self.networks):
            return False
        return not self.cert_sha256 or hmac.compare_digest(self.cert_sha256, cert_sha256 or "")


def load(data: list[dict[str, Any]]) -> list[Peer]:
    if not isinstance(data, list):
        raise PeerConfigError("The peer list must be a JSON list of objects.")
    peers = []
    for n, item in enumerate(data):
        if not isinstance(item, dict) or not item.get("facility") or not item.get("sender"):
            raise PeerConfigError(f"Peer {n}: facility and sender are required.")
        try:
            networks = tuple(ipaddress.ip_network(a, strict=False) for a in item.get("addresses", []))
        except ValueError as exc:
            raise PeerConfigError(f"Peer {n}: {exc}") from None
        cert = str(item.get("cert_sha256", "")).replace(":", "").lower()
        if not networks and not cert:
            raise PeerConfigError(
                f"Peer {n}: give addresses, cert_sha256, or both (the facility alone proves nothing)."
            )
        peers.append(Peer(str(item["facility"]), str(item["sender"]), networks, cert))
    return peers


def load_file(path: str | Path) -> list[Peer]:
    try:
        return load(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise PeerConfigError(f"{path}: {exc}") from None


def configured() -> list[Peer]:
    return load(getattr(settings, "KINGUARD_HL7_PEERS", []))


def known_address(peers: list[Peer], ip: str, cert_sha256: str = "") -> bool:
    """Whether any peer may connect from here (others are closed before a byte is read)."""
    return any(p.admits(ip, cert_sha256) for p in peers)


def sender_for(peers: list[Peer], facility: str, ip: str, cert_sha256: str = "") -> LabSender | None:
    """The active sender of the peer naming ``facility`` (MSH-4.1) from this address/certificate."""
    for peer in peers:
        if peer.facility == facility and peer.admits(ip, cert_sha256):
            sender = LabSender.objects.filter(name=peer.sender).first()
            if sender is not None and sender.active and sender.revoked_at is None:
                return sender
            return None
    return None
