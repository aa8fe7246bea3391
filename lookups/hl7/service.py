"""One MLLP block in, one ACK out: sender, limits, parse, then the FHIR door's delivery.

Invariants: every input gets an ACK (AA, AE or AR), never an exception; the delivery is the
shared ``lookups.fhir.services.deliver_bundle`` (a transaction: all the message's reports or
none); a refusal after the sender is known is audited (``fhir.delivery_refused``, delivery
``HL7v2/ORU^R01``), with codes and counts, never values; an unknown peer learns nothing but
"not registered".
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, close_old_connections

from lookups.fhir.services import DeliveryRefused, Issue, actor_for, audit_refused, deliver_bundle

from . import ack
from . import peers as peer_config
from .parsing import ISSUE_CODE, MAX_MESSAGE_BYTES, Hl7Refused, Parsed, Problem, Where, decode, header_of, parse, where

logger = logging.getLogger(__name__)
VIA = "HL7v2/ORU^R01"


def _rate_limited(sender_id: int) -> bool:
    """Fixed one-minute window per sender in the Django cache (as the FHIR door)."""
    limit = int(getattr(settings, "KINGUARD_HL7_RATE_PER_MINUTE", 600))
    key = f"hl7:rate:{sender_id}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=90)
    try:
        return cache.incr(key) > limit
    except ValueError:
        return False


def _problems(parsed: Parsed, refused: DeliveryRefused) -> list[Problem]:
    return [
        Problem(ISSUE_CODE.get(i.code, 207), i.diagnostics, where(parsed, i.expression), app_code=i.code)
        for i in refused.issues
    ]


def handle(raw: bytes, *, peers: list[peer_config.Peer], ip: str, cert_sha256: str = "") -> bytes:
    """The ACK for one message (the MLLP block's content, without framing)."""
    try:
        return _handle(raw, peers, ip, cert_sha256)
    except Exception:  # a bug or an outage must still be a NAK, with nothing half-written  # noqa: BLE001
        logger.exception("hl7: message handling failed")
        header = header_of(raw[:2048].decode("latin-1"))
        return ack.build(header, "AR", [Problem(207, "Internal error; nothing was recorded. Send again later.")])


def handle_in_worker(raw: bytes, *, peers: list[peer_config.Peer], ip: str, cert_sha256: str = "") -> bytes:
    """``handle`` in a listener thread: drop a broken or expired database connection around it
    (what Django's request cycle does for a view)."""
    close_old_connections()
    try:
        return handle(raw, peers=peers, ip=ip, cert_sha256=cert_sha256)
    finally:
        close_old_connections()


def _handle(raw: bytes, peers: list[peer_config.Peer], ip: str, cert_sha256: str) -> bytes:
    header = header_of(raw[:2048].decode("latin-1"))
    if len(raw) > MAX_MESSAGE_BYTES:
        return ack.build(header, "AR", [Problem(100, f"The message is larger than {MAX_MESSAGE_BYTES} bytes.")])
    try:
        text = decode(raw)
    except Hl7Refused as refused:
        return ack.build(header, refused.ack, refused.problems)
    header = header_of(text)
    try:
        sender = peer_config.sender_for(peers, header.sending_facility.split("^")[0], ip, cert_sha256)
    except DatabaseError:
        logger.exception("hl7: database unavailable")
        return ack.build(header, "AR", [Problem(207, "Temporarily unable to accept messages; send again later.")])
    if sender is None:
        logger.warning("hl7: refused facility %r from %s", header.sending_facility[:40], ip)
        return ack.build(
            header,
            "AR",
            [Problem(204, "This sending facility is not registered for this connection.", Where(field=4))],
        )
    actor = actor_for(sender, ip)
    if _rate_limited(sender.pk):
        return ack.build(header, "AR", [Problem(207, "Too many messages; send again in a minute.")])
    try:
        parsed = parse(text)
    except Hl7Refused as refused:
        audit_refused(
            sender,
            actor,
            DeliveryRefused(400, [Issue(f"hl7-{p.code}", p.text) for p in refused.problems]),
            kind=VIA,
        )
        return ack.build(header, refused.ack, refused.problems)
    try:
        deliver_bundle(sender=sender, actor=actor, data=parsed.bundle, via=VIA)
    except DeliveryRefused as refused:  # audited by deliver_bundle; nothing written
        return ack.build(header, "AE", _problems(parsed, refused))
    except Exception:  # a NAK, never a dropped connection; the transaction rolled back  # noqa: BLE001
        logger.exception("hl7: delivery failed")
        return ack.build(header, "AR", [Problem(207, "Internal error; nothing was recorded. Send again later.")])
    return ack.build(header, "AA", text=f"Accepted: {parsed.reports} report(s), {parsed.observations} observation(s).")
