"""Anomaly flags: the periodic detector and the acknowledge/resolve workflow.

Detection works on fixed windows aligned to the UNIX epoch (UTC), of the size each rule's
setting gives. Each run evaluates the current window and the one before it, so a pattern
is seen both while it grows and once its window is complete. A flag is unique per
(rule, key, window_start): a later run over the same window updates the existing flag's
evidence (count, details, last_seen_at) instead of raising another one.

Rules (thresholds in settings, ``KINGUARD_ANOMALY_*``):

* ``many_elders`` — one account looked up at least N distinct elders in the window (the
  "daipai" pattern of harvesting results);
* ``otp_failures`` / ``face_failures`` — a burst of failed one-time codes / failed face
  checks on one account;
* ``shared_ip`` — lookups from one IP address under at least N different accounts;
* ``unusual_hours`` — at least N lookups by one account during the quiet hours (local time);
* ``quick_use`` — an authorization used for a lookup within minutes of being registered.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone
from django.utils.translation import gettext as _

from guardians import permissions
from guardians.models import Person

from ..audit import Actor, audit_record
from ..models import AnomalyFlag, AuditEvent, FaceCheck, LookupRequest

Rule = AnomalyFlag.Rule
FLAG_ACTOR = "anomaly-detector"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class AnomalyError(Exception):
    """A refused acknowledge/resolve. ``str()`` is a clear message for the auditor."""


@dataclass
class Finding:
    rule: str
    key: str
    window_start: dt.datetime
    window_end: dt.datetime
    count: int
    account_id: int | None = None
    clinic_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _windows(now: dt.datetime, size: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    """The epoch-aligned window containing ``now`` and the one before it."""
    index = (now - EPOCH) // size
    current = EPOCH + index * size
    return [(current - size, current), (current, current + size)]


def _clinics_of_accounts(user_ids: set[int]) -> dict[int, int]:
    return dict(Person.objects.filter(user_id__in=user_ids).values_list("user_id", "clinic_id"))


def _many_elders(now: dt.datetime) -> list[Finding]:
    threshold = settings.KINGUARD_ANOMALY_MANY_ELDERS
    size = dt.timedelta(hours=settings.KINGUARD_ANOMALY_MANY_ELDERS_WINDOW_HOURS)
    findings = []
    for start, end in _windows(now, size):
        rows = (
            LookupRequest.objects.filter(created_at__gte=start, created_at__lt=end)
            .values("requester_id", "requester_person__clinic_id")
            .annotate(elders=Count("elder_id", distinct=True), lookups=Count("id"))
            .filter(elders__gte=threshold)
        )
        for row in rows:
            findings.append(
                Finding(
                    Rule.MANY_ELDERS,
                    f"user:{row['requester_id']}",
                    start,
                    end,
                    row["elders"],
                    row["requester_id"],
                    row["requester_person__clinic_id"],
                    {"distinct_elders": row["elders"], "lookups": row["lookups"], "threshold": threshold},
                )
            )
    return findings


def _otp_failures(now: dt.datetime) -> list[Finding]:
    threshold = settings.KINGUARD_ANOMALY_OTP_FAILURES
    size = dt.timedelta(minutes=settings.KINGUARD_ANOMALY_FAILURE_WINDOW_MINUTES)
    findings = []
    for start, end in _windows(now, size):
        rows = (
            AuditEvent.objects.filter(
                action__in=("otp.failed", "otp.throttled"), created_at__gte=start, created_at__lt=end
            )
            .exclude(actor_id=None)
            .values("actor_id")
            .annotate(failures=Count("id"))
            .filter(failures__gte=threshold)
        )
        found = list(rows)
        clinics = _clinics_of_accounts({row["actor_id"] for row in found})
        for row in found:
            findings.append(
                Finding(
                    Rule.OTP_FAILURES,
                    f"user:{row['actor_id']}",
                    start,
                    end,
                    row["failures"],
                    row["actor_id"],
                    clinics.get(row["actor_id"]),
                    {"failures": row["failures"], "threshold": threshold},
                )
            )
    return findings


def _face_failures(now: dt.datetime) -> list[Finding]:
    threshold = settings.KINGUARD_ANOMALY_FACE_FAILURES
    size = dt.timedelta(minutes=settings.KINGUARD_ANOMALY_FAILURE_WINDOW_MINUTES)
    failed = (FaceCheck.Outcome.NO_MATCH, FaceCheck.Outcome.REJECTED)
    findings = []
    for start, end in _windows(now, size):
        rows = (
            FaceCheck.objects.filter(
                state=FaceCheck.State.DONE, outcome__in=failed, created_at__gte=start, created_at__lt=end
            )
            .values("lookup__requester_id", "lookup__requester_person__clinic_id")
            .annotate(failures=Count("id"))
            .filter(failures__gte=threshold)
        )
        for row in rows:
            findings.append(
                Finding(
                    Rule.FACE_FAILURES,
                    f"user:{row['lookup__requester_id']}",
                    start,
                    end,
                    row["failures"],
                    row["lookup__requester_id"],
                    row["lookup__requester_person__clinic_id"],
                    {"failures": row["failures"], "threshold": threshold},
                )
            )
    return findings


def _shared_ip(now: dt.datetime) -> list[Finding]:
    threshold = settings.KINGUARD_ANOMALY_SHARED_IP_ACCOUNTS
    size = dt.timedelta(hours=settings.KINGUARD_ANOMALY_SHARED_IP_WINDOW_HOURS)
    findings = []
    for start, end in _windows(now, size):
        busy_ips = list(
            AuditEvent.objects.filter(action="lookup.started", created_at__gte=start, created_at__lt=end)
            .exclude(ip=None)
            .exclude(actor_id=None)
            .values("ip")
            .annotate(accounts=Count("actor_id", distinct=True))
            .filter(accounts__gte=threshold)
            .values_list("ip", flat=True)
        )
        for ip in busy_ips:
            events = AuditEvent.objects.filter(
                action="lookup.started", created_at__gte=start, created_at__lt=end, ip=ip
            ).values_list("actor_id", "actor_label", "clinic_id")
            accounts: dict[int, str] = {}
            clinics: Counter[int] = Counter()
            for actor_id, label, clinic_id in events:
                if actor_id is not None:
                    accounts[actor_id] = label
                if clinic_id is not None:
                    clinics[clinic_id] += 1
            findings.append(
                Finding(
                    Rule.SHARED_IP,
                    f"ip:{ip}",
                    start,
                    end,
                    len(accounts),
                    None,
                    clinics.most_common(1)[0][0] if clinics else None,
                    {
                        "ip": ip,
                        "accounts": sorted(accounts.values())[:50],
                        "clinics": sorted(clinics),
                        "threshold": threshold,
                    },
                )
            )
    return findings


def _unusual_hours(now: dt.datetime) -> list[Finding]:
    threshold = settings.KINGUARD_ANOMALY_UNUSUAL_HOURS_MIN
    first, last = settings.KINGUARD_ANOMALY_QUIET_HOURS
    quiet = [hour % 24 for hour in range(first, last if last > first else last + 24)]
    size = dt.timedelta(hours=24)
    local = timezone.get_current_timezone()
    findings = []
    for start, end in _windows(now, size):
        per_account: dict[int, list[str]] = defaultdict(list)
        clinic_of: dict[int, int] = {}
        rows = LookupRequest.objects.filter(created_at__gte=start, created_at__lt=end).values_list(
            "requester_id", "requester_person__clinic_id", "created_at"
        )
        for requester_id, clinic_id, created_at in rows.iterator(chunk_size=2000):
            local_time = created_at.astimezone(local)
            if local_time.hour in quiet:
                per_account[requester_id].append(local_time.strftime("%Y-%m-%d %H:%M"))
                clinic_of[requester_id] = clinic_id
        for requester_id, times in per_account.items():
            if len(times) >= threshold:
                findings.append(
                    Finding(
                        Rule.UNUSUAL_HOURS,
                        f"user:{requester_id}",
                        start,
                        end,
                        len(times),
                        requester_id,
                        clinic_of[requester_id],
                        {"local_times": sorted(times)[:20], "quiet_hours": [first, last], "threshold": threshold},
                    )
                )
    return findings


def _quick_use(now: dt.datetime) -> list[Finding]:
    minutes = settings.KINGUARD_ANOMALY_QUICK_USE_MINUTES
    lookback = dt.timedelta(hours=settings.KINGUARD_ANOMALY_LOOKBACK_HOURS)
    rows = (
        LookupRequest.objects.filter(created_at__gte=now - lookback, authorization__isnull=False)
        .filter(created_at__lte=F("authorization__registered_at") + dt.timedelta(minutes=minutes))
        .values(
            "authorization_id",
            "authorization__registered_at",
            "authorization__clinic_id",
            "requester_id",
        )
        .annotate(lookups=Count("id"))
    )
    findings = []
    for row in rows:
        registered_at = row["authorization__registered_at"]
        first_use = (
            LookupRequest.objects.filter(authorization_id=row["authorization_id"])
            .order_by("created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if first_use is None:  # the query above only yields authorizations with lookups
            continue
        findings.append(
            Finding(
                Rule.QUICK_USE,
                f"authorization:{row['authorization_id']}",
                registered_at,
                registered_at + dt.timedelta(minutes=minutes),
                row["lookups"],
                row["requester_id"],
                row["authorization__clinic_id"],
                {
                    "authorization": row["authorization_id"],
                    "minutes_to_first_use": round((first_use - registered_at).total_seconds() / 60, 1),
                    "threshold_minutes": minutes,
                },
            )
        )
    return findings


RULES = (_many_elders, _otp_failures, _face_failures, _shared_ip, _unusual_hours, _quick_use)


def _record(finding: Finding, actor: Actor, now: dt.datetime) -> bool:
    """Create or refresh the flag of one finding. Returns True when a new flag was raised."""
    lookup = {"rule": finding.rule, "key": finding.key, "window_start": finding.window_start}
    try:
        with transaction.atomic():
            flag = AnomalyFlag.objects.select_for_update().filter(**lookup).first()
            if flag is not None:
                if flag.count != finding.count or flag.details != finding.details:
                    flag.count, flag.details, flag.last_seen_at = finding.count, finding.details, now
                    flag.save(update_fields=["count", "details", "last_seen_at"])
                return False
            flag = AnomalyFlag.objects.create(
                **lookup,
                window_end=finding.window_end,
                clinic_id=finding.clinic_id,
                account_id=finding.account_id,
                count=finding.count,
                details=finding.details,
                created_at=now,
                last_seen_at=now,
            )
            audit_record(
                actor=actor,
                action="anomaly.flagged",
                outcome=finding.rule,
                target=flag,
                clinic=flag.clinic,
                details={"rule": finding.rule, "key": finding.key, "count": finding.count},
            )
    except IntegrityError:  # a concurrent run raised the same flag
        return False
    return True


def anomalies_detect(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Run every rule over its recent windows (Celery beat). Idempotent per window.

    Returns the number of new flags per rule. Each finding is recorded in its own short
    transaction that locks only its flag row.
    """
    now = now or timezone.now()
    actor = Actor.system(FLAG_ACTOR)
    raised: dict[str, int] = {}
    for rule in RULES:
        for finding in rule(now):
            if _record(finding, actor, now):
                raised[finding.rule] = raised.get(finding.rule, 0) + 1
    return raised


# --- acknowledge / resolve ----------------------------------------------------------------


def _locked_flag(actor: Actor, flag_id: int) -> AnomalyFlag:
    flag = AnomalyFlag.objects.select_for_update().filter(pk=flag_id).first()
    if flag is None or actor.user is None or not permissions.can_handle_anomalies(actor.user, flag.clinic_id):
        raise AnomalyError(_("No such anomaly flag for you."))
    return flag


def anomaly_acknowledge(*, actor: Actor, flag_id: int, note: str = "") -> AnomalyFlag:
    """open → acknowledged: someone is looking into it. Locks the flag; audited."""
    with transaction.atomic():
        flag = _locked_flag(actor, flag_id)
        if flag.status != AnomalyFlag.Status.OPEN:
            raise AnomalyError(_("Only an open flag can be acknowledged (this one is %s).") % flag.status)
        flag.status = AnomalyFlag.Status.ACKNOWLEDGED
        flag.acknowledged_by = actor.user
        flag.acknowledged_at = timezone.now()
        if note.strip():
            flag.resolution_note = note.strip()[:2000]
        flag.save(update_fields=["status", "acknowledged_by", "acknowledged_at", "resolution_note"])
        audit_record(
            actor=actor,
            action="anomaly.acknowledged",
            outcome=AnomalyFlag.Status.ACKNOWLEDGED,
            target=flag,
            clinic=flag.clinic,
            details={"rule": flag.rule, "key": flag.key, "note": note.strip()[:300]},
        )
    return flag


def anomaly_resolve(*, actor: Actor, flag_id: int, note: str) -> AnomalyFlag:
    """open/acknowledged → resolved, with a note saying what was found. Locks; audited.

    Resolving an open flag directly also records the resolver as the acknowledger.
    """
    note = (note or "").strip()
    if not note:
        raise AnomalyError(_("Say what was found before resolving the flag."))
    with transaction.atomic():
        flag = _locked_flag(actor, flag_id)
        if flag.status == AnomalyFlag.Status.RESOLVED:
            raise AnomalyError(_("This flag is already resolved."))
        now = timezone.now()
        if flag.acknowledged_at is None:
            flag.acknowledged_by, flag.acknowledged_at = actor.user, now
        flag.status = AnomalyFlag.Status.RESOLVED
        flag.resolved_by = actor.user
        flag.resolved_at = now
        flag.resolution_note = note[:2000]
        flag.save(
            update_fields=[
                "status",
                "acknowledged_by",
                "acknowledged_at",
                "resolved_by",
                "resolved_at",
                "resolution_note",
            ]
        )
        audit_record(
            actor=actor,
            action="anomaly.resolved",
            outcome=AnomalyFlag.Status.RESOLVED,
            target=flag,
            clinic=flag.clinic,
            details={"rule": flag.rule, "key": flag.key, "note": note[:300]},
        )
    return flag
