"""Laboratory result delivery services (FHIR R4), split by concern:

- ``delivery``: the entry points (``deliver_report``, ``deliver_bundle``) and delivery audit;
- ``matching``: a new report matched to a registered person or queued (never creates one);
- ``corrections``: amended/corrected/entered-in-error, earlier versions kept encrypted;
- ``pending``: the desk queue (attach on registration, discard after retention).

Callers import from ``lookups.fhir.services``; the names below are the public surface.
"""

from ..parsing import (
    CLINIC_SYSTEM,
    DEFAULT_ID_SYSTEMS,
    MAX_BODY_BYTES,
    MAX_ENTRIES,
    WITHDRAWN_STATUS,
    DeliveryRefused,
    Issue,
    operation_outcome,
    parse_json,
)
from .delivery import Delivered, actor_for, audit_refused, deliver_bundle, deliver_report
from .matching import CORRECTED, CREATED, ENTRY_STATUS, UNCHANGED, WITHDRAWN
from .pending import (
    DEFAULT_PENDING_RETENTION_DAYS,
    DISCARD_REASON_MAX,
    DiscardRefused,
    PendingNotFound,
    pending_attach,
    pending_discard,
    pending_retention,
)

__all__ = [
    "CLINIC_SYSTEM",
    "CORRECTED",
    "CREATED",
    "DEFAULT_ID_SYSTEMS",
    "DEFAULT_PENDING_RETENTION_DAYS",
    "DISCARD_REASON_MAX",
    "ENTRY_STATUS",
    "MAX_BODY_BYTES",
    "MAX_ENTRIES",
    "UNCHANGED",
    "WITHDRAWN",
    "WITHDRAWN_STATUS",
    "Delivered",
    "DeliveryRefused",
    "DiscardRefused",
    "Issue",
    "PendingNotFound",
    "actor_for",
    "audit_refused",
    "deliver_bundle",
    "deliver_report",
    "operation_outcome",
    "parse_json",
    "pending_attach",
    "pending_discard",
    "pending_retention",
]
