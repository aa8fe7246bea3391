"""The FHIR R4 door for laboratories: ``/fhir/metadata``, ``POST /fhir/``, ``POST /fhir/DiagnosticReport``.

Invariants: a sender can only write (any read is 405/404, the same with or without a token);
every answer is FHIR JSON (``OperationOutcome`` on refusal), never an HTML error page or a 500;
the body is read at most ``MAX_BODY_BYTES + 1`` bytes, so a 50 MB body costs 1 MB of memory.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from . import services, tokens
from .services import DeliveryRefused, Issue, operation_outcome

logger = logging.getLogger(__name__)
FHIR_JSON = "application/fhir+json"
ACCEPTED_TYPES = frozenset({"application/fhir+json", "application/json"})


def _answer(status: int, body: dict, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type=f"{FHIR_JSON}; charset=utf-8")
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name] = value
    return response


def _refuse(status: int, code: str, text: str, **headers: str) -> HttpResponse:
    return _answer(status, operation_outcome([Issue(code, text)]), **headers)


def _rate_limited(sender_id: int) -> bool:
    """Fixed one-minute window per sender in the Django cache (Redis in production)."""
    limit = int(getattr(settings, "KINGUARD_FHIR_RATE_PER_MINUTE", 600))
    key = f"fhir:rate:{sender_id}:{int(time.time() // 60)}"
    cache.add(key, 0, timeout=90)
    try:
        return cache.incr(key) > limit
    except ValueError:
        return False


def _delivery(handler: Callable) -> Callable:
    @csrf_exempt
    def view(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return _refuse(
                405, "not-supported", "Laboratories can only deliver (POST); nothing can be read here.", Allow="POST"
            )
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, token = header.partition(" ")
        sender = tokens.sender_for_token(token.strip()) if scheme.lower() == "bearer" else None
        if sender is None:
            return _refuse(
                401,
                "login",
                "A valid sender token is required (Authorization: Bearer ...).",
                **{"WWW-Authenticate": "Bearer"},
            )
        if _rate_limited(sender.pk):
            return _refuse(429, "throttled", "Too many deliveries; retry in a minute.", **{"Retry-After": "60"})
        media = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if media not in ACCEPTED_TYPES:
            return _refuse(415, "not-supported", "Send application/fhir+json.")
        actor = services.actor_for(sender, request.META.get("REMOTE_ADDR") or None)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        body = b"" if declared > services.MAX_BODY_BYTES else request.read(services.MAX_BODY_BYTES + 1)
        try:
            if declared > services.MAX_BODY_BYTES or len(body) > services.MAX_BODY_BYTES:
                raise DeliveryRefused(
                    413, [Issue("too-costly", f"The body is larger than {services.MAX_BODY_BYTES} bytes.")]
                )
            data = services.parse_json(body)
        except DeliveryRefused as refused:
            services.audit_refused(sender, actor, refused, kind=request.path[:40])
            return _answer(refused.status, operation_outcome(refused.issues))
        try:
            delivered = handler(sender=sender, actor=actor, data=data)
        except DeliveryRefused as refused:
            return _answer(refused.status, operation_outcome(refused.issues))
        except Exception:
            logger.exception("fhir delivery failed", extra={"sender": sender.pk})
            return _refuse(500, "exception", "The delivery could not be stored; nothing was written. Retry later.")
        return _answer(delivered.status, delivered.body)

    return view


bundle = _delivery(services.deliver_bundle)
diagnostic_report = _delivery(services.deliver_report)


@csrf_exempt
def metadata(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _refuse(405, "not-supported", "GET only.", Allow="GET")
    return _answer(200, capability_statement())


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Anything else under /fhir/: the same answer for every path, token or not."""
    return _refuse(404, "not-found", "Not supported: this server only accepts deliveries.")


def capability_statement() -> dict:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-03",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON],
        "software": {"name": "Kinguard"},
        "implementation": {"description": "Kinguard laboratory result delivery (write only)"},
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Write only. Patient identified by the resident ID number (GB 11643) with identifier "
                    f"system {services.DEFAULT_ID_SYSTEMS[0]}; results are matched, never create a person, "
                    "and unmatched results wait for a registration. status=final records a report; amended or "
                    "corrected (same identifier) replaces it; entered-in-error withdraws it. "
                    f"At most {services.MAX_ENTRIES} entries and {services.MAX_BODY_BYTES} bytes per request."
                ),
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ],
                            "text": "Bearer token issued by the clinic",
                        }
                    ],
                    "description": "Authorization: Bearer <sender token>; mutual TLS at the proxy in production.",
                },
                "resource": [
                    {"type": "DiagnosticReport", "interaction": [{"code": "create"}]},
                    {
                        "type": "Observation",
                        "interaction": [{"code": "create"}],
                        "documentation": "Only inside a Bundle or contained in a DiagnosticReport.",
                    },
                    {
                        "type": "Patient",
                        "documentation": "Only as the report's subject (contained or in a Bundle); never stored.",
                    },
                ],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
