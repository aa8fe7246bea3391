"""Reads for the audit views, always scoped by ``guardians.permissions``.

Every query here is bounded (a page, a period, a row limit) and served by an index on
``lookups_auditevent``: (subject, sequence), (actor, sequence), (action, sequence),
(clinic, sequence) (read backwards for newest first) or (created_at).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Max, Min, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext

from guardians import permissions
from guardians.models import Authorization, Person

from ..models import AuditChainHead, AuditEvent
from . import catalog, labels

if TYPE_CHECKING:
    from guardians.models import User

REPORT_ROW_LIMIT = 1000


def audit_events_for(user: User) -> QuerySet[AuditEvent]:
    """The events ``user`` may read: all for a superuser, their clinics' for auditors/managers."""
    clinic_ids = permissions.audit_clinic_ids(user)
    if clinic_ids is None:
        return AuditEvent.objects.all()
    if not clinic_ids:
        return AuditEvent.objects.none()
    return AuditEvent.objects.filter(clinic_id__in=sorted(clinic_ids))


def person_for_auditor(user: User, public_id: uuid.UUID | str) -> Person | None:
    """A person whose reports ``user`` may read, or None (the view answers 404)."""
    try:
        return permissions.people_visible_to_auditor(user).select_related("clinic", "user").get(public_id=public_id)
    except (Person.DoesNotExist, ValueError, TypeError):
        return None


def local_day_bounds(first: dt.date, last: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[first 00:00, last+1 00:00) in the site's time zone, as aware datetimes."""
    tz = timezone.get_current_timezone()
    start = dt.datetime.combine(first, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


# --- the per-elder access report ----------------------------------------------------------


@dataclass
class LookupRow:
    lookup_id: str
    started_at: dt.datetime
    who: str
    relationship: str
    outcome: str = field(default_factory=lambda: gettext("in progress"))
    ended_at: dt.datetime | None = None
    results_shown: int = 0
    face_attempts: int = 0
    sequences: list[int] = field(default_factory=list)


@dataclass
class ElderReport:
    elder: Person
    start: dt.datetime
    end: dt.datetime
    lookups: list[LookupRow]
    staff_views: list[AuditEvent]
    authorization_changes: list[AuditEvent]
    notices: list[AuditEvent]
    truncated: bool
    first_sequence: int | None
    last_sequence: int | None
    head_sequence: int


def _who(event: AuditEvent) -> str:
    person = getattr(event.actor, "person", None) if event.actor_id else None
    if person is not None:
        return person.full_name
    return event.actor_label


def elder_report(user: User, elder: Person, start: dt.datetime, end: dt.datetime) -> ElderReport:
    """Who looked up ``elder``, when and with what outcome, plus staff views and notices.

    Bounded to REPORT_ROW_LIMIT events of the period (newest first), read through the
    (subject, sequence) index; a fixed number of queries whatever the size of the log.
    """
    events = list(
        audit_events_for(user)
        .filter(
            subject=elder,
            created_at__gte=start,
            created_at__lt=end,
            action__in=sorted(catalog.ELDER_REPORT_ACTIONS),
        )
        .select_related("actor__person")
        .order_by("-sequence")[: REPORT_ROW_LIMIT + 1]
    )
    truncated = len(events) > REPORT_ROW_LIMIT
    events = events[:REPORT_ROW_LIMIT]
    relationships = {
        guardian_user_id: str(Authorization.Relationship(relationship).label)
        for guardian_user_id, relationship in Authorization.objects.filter(elder=elder)
        .filter(guardian__user__isnull=False)
        .values_list("guardian__user_id", "relationship")
    }
    lookups: OrderedDict[str, LookupRow] = OrderedDict()
    staff_views, authorization_changes, notices = [], [], []
    for event in reversed(events):  # oldest first, so a lookup starts before it ends
        if event.action in catalog.LOOKUP_ACTIONS:
            row = lookups.get(event.target_id)
            if row is None:
                row = LookupRow(
                    lookup_id=event.target_id,
                    started_at=event.created_at,
                    who=_who(event),
                    relationship=(
                        gettext("themselves")
                        if event.details.get("self")
                        else relationships.get(event.actor_id, "")
                        if event.actor_id
                        else ""
                    ),
                )
                lookups[event.target_id] = row
            row.sequences.append(event.sequence)
            if event.action == "results.viewed":
                row.results_shown += 1
            elif event.action in catalog.LOOKUP_END_ACTIONS:
                row.outcome = {
                    "lookup.granted": gettext("granted"),
                    "lookup.denied": gettext("denied (%(reason)s)")
                    % {"reason": labels.outcome_label(str(event.details.get("reason", "")))},
                    "lookup.cancelled": gettext("cancelled"),
                    "lookup.expired": gettext("expired unfinished"),
                }[event.action]
                row.ended_at = event.created_at
        elif event.action in catalog.STAFF_VIEW_ACTIONS:
            staff_views.append(event)
        elif event.action in catalog.AUTHORIZATION_ACTIONS:
            authorization_changes.append(event)
        else:
            notices.append(event)
    head = AuditChainHead.objects.filter(pk=1).values_list("last_sequence", flat=True).first() or 0
    return ElderReport(
        elder=elder,
        start=start,
        end=end,
        lookups=list(reversed(lookups.values())),
        staff_views=list(reversed(staff_views)),
        authorization_changes=list(reversed(authorization_changes)),
        notices=list(reversed(notices)),
        truncated=truncated,
        first_sequence=events[-1].sequence if events else None,
        last_sequence=events[0].sequence if events else None,
        head_sequence=head,
    )


# --- the per-guardian activity view -------------------------------------------------------


@dataclass
class GuardianActivity:
    guardian: Person
    start: dt.datetime
    end: dt.datetime
    events: list[AuditEvent]
    authorizations: list[Authorization]
    counts: dict[str, int]
    truncated: bool


def guardian_activity(user: User, guardian: Person, start: dt.datetime, end: dt.datetime) -> GuardianActivity:
    """What one guardian's account did in the period, read through the (actor, sequence) index."""
    events: list[AuditEvent] = []
    if guardian.user_id is not None:
        events = list(
            audit_events_for(user)
            .filter(actor_id=guardian.user_id, created_at__gte=start, created_at__lt=end)
            .select_related("subject")
            .order_by("-sequence")[: REPORT_ROW_LIMIT + 1]
        )
    truncated = len(events) > REPORT_ROW_LIMIT
    events = events[:REPORT_ROW_LIMIT]
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        counts[event.action] += 1
    authorizations = list(
        permissions.authorizations_visible_to_auditor(user)
        .filter(guardian=guardian)
        .select_related("elder")
        .order_by("-registered_at")
    )
    return GuardianActivity(guardian, start, end, events, authorizations, dict(sorted(counts.items())), truncated)


# --- CSV export ---------------------------------------------------------------------------

EXPORT_COLUMNS = [
    "event_sequence",
    "event_time_utc",
    "user_id",
    "user_type",
    "clinic",
    "action",
    "action_label",
    "action_type",
    "outcome",
    "patient_public_id",
    "patient_name",
    "data_type",
    "data_id",
    "source_ip",
    "user_agent",
    "details",
    "prev_hash",
    "event_hash",
]


def export_rows(user: User, start: dt.datetime, end: dt.datetime, up_to_sequence: int) -> Iterator[list[Any]]:
    """Rows of the period's events in chain order, streamed from the database in chunks."""
    queryset = (
        audit_events_for(user)
        .filter(created_at__gte=start, created_at__lt=end, sequence__lte=up_to_sequence)
        .order_by("sequence")
        .values_list(
            "sequence",
            "created_at",
            "actor_label",
            "actor_id",
            "clinic__name",
            "action",
            "outcome",
            "subject__public_id",
            "subject__full_name",
            "target_type",
            "target_id",
            "ip",
            "user_agent",
            "details",
            "prev_hash",
            "hash",
        )
    )
    for row in queryset.iterator(chunk_size=2000):
        (seq, created, label, actor_id, clinic, action, outcome, subject_id, subject_name, *rest) = row
        target_type, target_id, ip, agent, details, prev_hash, event_hash = rest
        yield [
            seq,
            created.astimezone(dt.UTC).isoformat(timespec="microseconds"),
            label,
            "person" if actor_id else ("system" if label.startswith("system:") else "anonymous"),
            clinic or "",
            action,
            catalog.action_label(action),
            catalog.action_category(action),
            outcome,
            subject_id or "",
            subject_name or "",
            target_type,
            target_id,
            ip or "",
            agent,
            json.dumps(details, sort_keys=True, ensure_ascii=False),
            prev_hash,
            event_hash,
        ]


def chain_head_sequence() -> int:
    return AuditChainHead.objects.filter(pk=1).values_list("last_sequence", flat=True).first() or 0


# --- dashboard ----------------------------------------------------------------------------

LOOKUP_OUTCOME_SERIES = [
    ("lookup.granted", "Granted"),
    ("lookup.denied", "Denied"),
    ("lookup.cancelled", "Cancelled"),
    ("lookup.expired", "Expired unfinished"),
    ("lookup.start_refused", "Refused at start"),
]
FACE_FAILED = {"no_match", "rejected", "error"}


@dataclass
class DashboardData:
    days: list[dt.date]
    lookups_by_outcome: dict[str, list[int]]
    otp_failure_rate: list[float | None]
    face_failure_rate: list[float | None]
    totals: dict[str, int]


def dashboard_data(
    user: User, days: int = 30, today: dt.date | None = None, clinic_id: int | None = None
) -> DashboardData:
    """Per local day over the last ``days`` days: lookup outcomes and OTP/face failure rates.

    One grouped query over the (created_at) index.
    """
    today = today or timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    start, end = local_day_bounds(first, today)
    actions = [action for action, _ in LOOKUP_OUTCOME_SERIES] + ["otp.verified", "otp.failed", "face.verdict"]
    rows = (
        audit_events_for(user)
        .filter(action__in=actions, created_at__gte=start, created_at__lt=end)
        .filter(**({} if clinic_id is None else {"clinic_id": clinic_id}))
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values_list("day", "action", "outcome")
        .annotate(n=Count("id"))
        .order_by()
    )
    day_list = [first + dt.timedelta(days=i) for i in range(days)]
    index = {day: i for i, day in enumerate(day_list)}
    by_outcome = {label: [0] * days for _, label in LOOKUP_OUTCOME_SERIES}
    labels = dict(LOOKUP_OUTCOME_SERIES)
    otp_ok, otp_bad, face_all, face_bad = ([0] * days for _ in range(4))
    for day, action, outcome, n in rows:
        i = index.get(day)
        if i is None:
            continue
        if action in labels:
            by_outcome[labels[action]][i] += n
        elif action == "otp.verified":
            otp_ok[i] += n
        elif action == "otp.failed":
            otp_bad[i] += n
        elif action == "face.verdict" and outcome != "discarded":
            face_all[i] += n
            if outcome in FACE_FAILED:
                face_bad[i] += n

    def rate(bad: int, total: int) -> float | None:
        return round(100 * bad / total, 1) if total else None

    return DashboardData(
        days=day_list,
        lookups_by_outcome=by_outcome,
        otp_failure_rate=[rate(otp_bad[i], otp_ok[i] + otp_bad[i]) for i in range(days)],
        face_failure_rate=[rate(face_bad[i], face_all[i]) for i in range(days)],
        totals={
            "lookups": sum(sum(series) for series in by_outcome.values()),
            "otp_attempts": sum(otp_ok) + sum(otp_bad),
            "otp_failures": sum(otp_bad),
            "face_checks": sum(face_all),
            "face_failures": sum(face_bad),
        },
    )


# --- verification bundle (JSON Lines, checked by lookups.audit_verify) --------------------


def bundle_lines(user: User, start: dt.datetime, end: dt.datetime, up_to_sequence: int) -> Iterator[str]:
    """The period's chain positions as a verification bundle, streamed in sequence order.

    One global chain: events of clinics outside ``user``'s scope are written as ``link``
    rows (sequence and hashes only), so a clinic-scoped bundle is still gap-free and
    verifiable without revealing other clinics' events. The header carries both anchors.
    """
    from lookups.audit import hashed_content
    from lookups.audit_signing import latest_signed_head
    from lookups.audit_verify import FORMAT

    clinic_ids = permissions.audit_clinic_ids(user)
    period = AuditEvent.objects.filter(created_at__gte=start, created_at__lt=end, sequence__lte=up_to_sequence)
    bounds = period.aggregate(first=Min("sequence"), last=Max("sequence"))
    first, last = bounds["first"], bounds["last"]
    if first is None:
        first, last = 1, 0
    edges = dict(AuditEvent.objects.filter(sequence__in=[first, last]).values_list("sequence", "prev_hash"))
    last_hash = AuditEvent.objects.filter(sequence=last).values_list("hash", flat=True).first() or ""
    head: dict[str, Any] = dict(AuditChainHead.objects.filter(pk=1).values("last_sequence", "last_hash").first() or {})
    header = {
        "type": "header",
        "format": FORMAT,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "first_sequence": first,
        "last_sequence": last,
        "anchor_prev_hash": edges.get(first, ""),
        "anchor_last_hash": last_hash,
        "head": {"sequence": head.get("last_sequence"), "hash": head.get("last_hash")},
        "scope": "all clinics" if clinic_ids is None else sorted(clinic_ids),
        "signed_head": latest_signed_head(),
    }
    yield json.dumps(header, sort_keys=True, ensure_ascii=False) + "\n"
    rows = AuditEvent.objects.filter(sequence__gte=first, sequence__lte=last).order_by("sequence")
    for event in rows.iterator(chunk_size=2000):
        if clinic_ids is None or event.clinic_id in clinic_ids:
            line = {"type": "event", **hashed_content(event)}
        else:
            line = {"type": "link", "sequence": event.sequence}
        line["prev_hash"], line["hash"] = event.prev_hash, event.hash
        yield json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n"
