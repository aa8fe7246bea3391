"""What is looked up and how: test results, lookup requests, face checks, the audit log.

LookupRequest and FaceCheck change state only through ``lookups.services``.
"""

import os
import uuid

import pgtrigger
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from guardians.models import Authorization, Clinic, Person


class PrivateStorage(FileSystemStorage):
    """File storage under PRIVATE_STORAGE_ROOT with no URL (``url()`` raises).

    The root is read from settings at use time, not when the model class is built, so a
    changed setting (e.g. per-test directories) is honoured.
    """

    def __init__(self) -> None:
        super().__init__(base_url=None)

    @property
    def base_location(self) -> str:
        return str(settings.PRIVATE_STORAGE_ROOT)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    def url(self, name: str | None) -> str:
        raise ValueError("Private files have no URL; they are streamed by a permission-checked view.")


def private_storage() -> FileSystemStorage:
    """Storage with no URL: files are only ever streamed by a permission-checked view."""
    return PrivateStorage()


class TestResult(models.Model):
    class Kind(models.TextChoices):
        NUCLEIC_ACID = "nucleic_acid", _("Nucleic acid (PCR)")
        ANTIGEN = "antigen", _("Rapid antigen")
        ANTIBODY = "antibody", _("Antibody")
        BLOOD = "blood", _("Blood panel")
        OTHER = "other", _("Other")

    __test__ = False  # not a pytest test class

    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="results")
    elder = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="results")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    sampled_at = models.DateTimeField()
    site = models.CharField(max_length=200)
    lab = models.CharField(max_length=200)
    result = models.CharField(max_length=200)
    reported_at = models.DateTimeField()
    sampling_photo = models.FileField(storage=private_storage, upload_to="sampling/%Y/%m/", blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["elder", "-sampled_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.sampled_at:%Y-%m-%d}: {self.result}"


class LookupRequest(models.Model):
    """One guardian's attempt to see one elder's results.

    awaiting_otp → awaiting_face → checking_face → granted → expired; from any
    non-final state also → denied / cancelled / expired. ``authorization`` is null only
    for an elder's lookup of their own results.
    """

    class State(models.TextChoices):
        AWAITING_OTP = "awaiting_otp", _("Waiting for one-time code")
        AWAITING_FACE = "awaiting_face", _("Waiting for face photo")
        CHECKING_FACE = "checking_face", _("Checking face")
        GRANTED = "granted", _("Results available")
        DENIED = "denied", _("Denied")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired")

    FINAL_STATES = frozenset({State.DENIED, State.CANCELLED, State.EXPIRED})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="lookups")
    requester_person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="lookups_made")
    elder = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="lookups_received")
    authorization = models.ForeignKey(
        Authorization, null=True, blank=True, on_delete=models.PROTECT, related_name="lookups"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.AWAITING_OTP)
    face_attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    otp_verified_at = models.DateTimeField(null=True, blank=True)
    granted_at = models.DateTimeField(null=True, blank=True)
    grant_expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=40, blank=True)
    # HMAC of the session key that started the lookup (lookups.session_binding); "" = unbound.
    session_binding = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        indexes = [models.Index(fields=["requester", "-created_at"]), models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"Lookup {self.id} ({self.state})"

    @property
    def is_self_lookup(self) -> bool:
        return self.authorization_id is None


class FaceCheck(models.Model):
    """One face verification of a lookup, run by a Celery worker.

    Records everything needed to trace a decision later (distance, threshold, model version,
    timings) and nothing of the face itself. ``probe_path`` is cleared once the probe image
    has been deleted, which happens whenever the check ends, whatever its outcome.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")

    class Outcome(models.TextChoices):
        MATCH = "match", _("Match")
        NO_MATCH = "no_match", _("No match")
        REJECTED = "rejected", _("Photo not usable")
        ERROR = "error", _("Error")
        EXPIRED = "expired", _("Expired before it ran")
        NOT_QUEUED = "not_queued", _("Could not be queued")
        DISCARDED = "discarded", _("Discarded: lookup no longer valid")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    lookup = models.ForeignKey(LookupRequest, on_delete=models.CASCADE, related_name="face_checks")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    reason_code = models.CharField(max_length=40, blank=True)
    # The actions this capture had to answer, in order ("blink,turn_left"); empty for a
    # still photo or the older burst check. Set once at submission from the used challenge.
    challenge = models.CharField(max_length=64, blank=True)
    distance = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    model_version = models.CharField(max_length=120, blank=True)
    probe_path = models.CharField(max_length=300, blank=True)
    deliveries = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    detect_ms = models.PositiveIntegerField(null=True, blank=True)
    encode_ms = models.PositiveIntegerField(null=True, blank=True)
    total_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"Face check {self.id} ({self.state} {self.outcome})"


class FaceChallenge(models.Model):
    """The prompted-liveness challenge the server chose for one face attempt (issue 11).

    Issued when the face step is shown (``lookups.challenges.challenge_issue``), named by the
    upload (``nonce``) and consumed exactly once (``used_at``) by ``challenge_consume``; a
    nonce of another lookup, an expired or a used one is refused. ``actions`` is the
    comma-separated, ordered list of ``lookups.faces.ACTIONS`` to perform, e.g. "blink,turn_left".
    No face data is stored here.
    """

    lookup = models.ForeignKey(LookupRequest, on_delete=models.CASCADE, related_name="face_challenges")
    nonce = models.CharField(max_length=64, unique=True, editable=False)
    actions = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["lookup", "-created_at"], name="face_challenge_lookup_idx")]

    def __str__(self) -> str:
        return f"Face challenge {self.actions} for {self.lookup_id}"

    @property
    def action_list(self) -> list[str]:
        return [a for a in self.actions.split(",") if a]


def refuse(
    name: str,
    operation: pgtrigger.Operation,
    what: str,
    *,
    level: pgtrigger.Level = pgtrigger.Row,
    condition: pgtrigger.Condition | None = None,
) -> pgtrigger.Trigger:
    """A BEFORE trigger that raises "<table> is append-only: <what> is refused" (PostgreSQL)."""
    return pgtrigger.Trigger(
        name=name,
        operation=operation,
        when=pgtrigger.Before,
        level=level,
        condition=condition,
        func=f"RAISE EXCEPTION '% is append-only: {what} refused', TG_TABLE_NAME; RETURN NULL;",
    )


class AuditEvent(models.Model):
    """Append-only, hash-chained record of one step. Written only by ``lookups.audit``.

    ``hash = sha256(prev_hash + canonical JSON of the other fields)``; ``sequence`` orders
    the single chain. Never carries face data or full ID numbers.

    The three references (actor, clinic, subject) are PROTECTed by the ORM but carry no
    database FOREIGN KEY constraint and no single-column index (the ``(x, sequence)``
    indexes below serve every lookup by them): the per-row constraint triggers and the
    redundant indexes were most of the chain-head lock time of a bulk append (issue 13,
    README "Audit and oversight"). The referenced ids are covered by each event's hash.
    """

    sequence = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    actor_label = models.CharField(max_length=150)
    clinic = models.ForeignKey(
        Clinic, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False
    )
    action = models.CharField(max_length=60)
    outcome = models.CharField(max_length=30, blank=True)
    subject = models.ForeignKey(
        Person, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_constraint=False, db_index=False
    )
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-sequence"]
        # Every index is paid for under the chain-head lock by each append (issue 13): only
        # those the oversight reads use (README "Audit and oversight", migration 0013).
        # (x, sequence) ascending: read backwards for ``-sequence``; new rows go at the right
        # end of their group, so pages split full instead of in half as with ``-sequence``.
        indexes = [
            models.Index(fields=["action", "sequence"], name="audit_action_seq_idx"),
            models.Index(fields=["subject", "sequence"], name="audit_subject_seq_idx"),
            models.Index(fields=["actor", "sequence"], name="audit_actor_seq_idx"),
            # auditors' clinic-scoped lists
            models.Index(fields=["clinic", "sequence"], name="audit_clinic_seq_asc_idx"),
            models.Index(fields=["actor_label", "sequence"], name="audit_actor_label_seq_asc_idx"),
            # periods: admin list (newest first in the period), reports, export, dashboard and
            # the anomaly detector's windows (a BRIN was tried: a year-long period then sorts
            # the whole log, 212 ms at 1M events; README "Audit and oversight")
            models.Index(fields=["created_at"], name="lookups_aud_created_a462a7_idx"),
        ]
        # PostgreSQL only (pgtrigger does nothing on SQLite): the table is append-only even
        # for raw SQL. Row triggers do not fire on TRUNCATE, hence the statement trigger.
        triggers = [
            refuse("audit_event_append_only", pgtrigger.Update | pgtrigger.Delete, "UPDATE and DELETE"),
            refuse("audit_event_no_truncate", pgtrigger.Truncate, "TRUNCATE", level=pgtrigger.Statement),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.outcome}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class AuditChainHead(models.Model):
    """Single row holding the chain's last sequence and hash; locked to append in order.

    On PostgreSQL the row only moves forward: an UPDATE that does not increase
    ``last_sequence`` is refused, as are DELETE and TRUNCATE (pgtrigger, see Meta).
    """

    last_sequence = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        triggers = [
            refuse(
                "audit_head_forward_only",
                pgtrigger.Update,
                "an UPDATE that does not increase last_sequence",
                condition=pgtrigger.Q(new__last_sequence__lte=pgtrigger.F("old__last_sequence")),
            ),
            refuse("audit_head_no_delete", pgtrigger.Delete, "DELETE"),
            refuse("audit_head_no_truncate", pgtrigger.Truncate, "TRUNCATE", level=pgtrigger.Statement),
        ]

    def __str__(self) -> str:
        return f"Audit chain head at #{self.last_sequence}"


# --- oversight: anomaly flags and elder notices ------------------------------------------


class AnomalyFlag(models.Model):
    """A suspicious pattern found in the log by the periodic detector (``lookups.oversight``).

    One row per (rule, key, window_start): running the detector again over the same window
    updates the evidence of the existing flag instead of raising a new one. Handled through
    ``anomaly_acknowledge`` / ``anomaly_resolve`` (who and when are recorded and audited).
    """

    class Rule(models.TextChoices):
        MANY_ELDERS = "many_elders", _("One account looked up many different elders")
        OTP_FAILURES = "otp_failures", _("Burst of one-time code failures on an account")
        FACE_FAILURES = "face_failures", _("Burst of face check failures on an account")
        SHARED_IP = "shared_ip", _("One IP address used by many accounts")
        UNUSUAL_HOURS = "unusual_hours", _("Lookups at unusual hours")
        QUICK_USE = "quick_use", _("Authorization used minutes after it was created")
        CHAIN_BROKEN = "chain_broken", _("Audit chain verification failed")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        RESOLVED = "resolved", _("Resolved")

    rule = models.CharField(max_length=20, choices=Rule.choices)
    key = models.CharField(max_length=120, help_text=_("What the pattern is about, e.g. user:12 or ip:10.0.0.1"))
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    clinic = models.ForeignKey(Clinic, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    count = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "key", "window_start"], name="one_flag_per_pattern_window")
        ]
        indexes = [models.Index(fields=["status", "-created_at"]), models.Index(fields=["clinic", "status"])]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} ({self.key}, {self.window_start:%Y-%m-%d %H:%M})"


class Notice(models.Model):
    """One message to an elder about access to their data, sent once by a Celery task.

    Created in the same transaction as the event it reports; unique per (kind, object_key),
    so an event can never produce two notices. ``lookups.oversight.notices.notice_send``
    locks the row and skips channels already sent, so a retried or redelivered task sends
    each message exactly once.
    """

    class Kind(models.TextChoices):
        RESULTS_VIEWED = "results_viewed", _("Results shown to someone else")
        AUTHORIZATION_CREATED = "authorization_created", _("Authorization registered")
        AUTHORIZATION_APPROVED = "authorization_approved", _("Authorization approved")
        AUTHORIZATION_REVOKED = "authorization_revoked", _("Authorization revoked")
        AUTHORIZATION_EXPIRING = "authorization_expiring", _("Authorization about to expire")
        RESULT_CORRECTED = "result_corrected", _("Result corrected after someone else saw it")
        RESULT_WITHDRAWN = "result_withdrawn", _("Result withdrawn after someone else saw it")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        NO_CONTACT = "no_contact", _("No contact on file")

    kind = models.CharField(max_length=30, choices=Kind.choices)
    object_key = models.CharField(max_length=100)
    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="notices")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    email_to = models.CharField(max_length=254, blank=True)
    phone_to = models.CharField(max_length=40, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    sms_sent_at = models.DateTimeField(null=True, blank=True)
    # Set when the gateway refused the SMS for good (bad number, misconfiguration): never retried.
    sms_given_up_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["kind", "object_key"], name="one_notice_per_event")]
        indexes = [models.Index(fields=["person", "-created_at"]), models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.person.full_name} ({self.status})"


# --- laboratory delivery over FHIR (issue 15) ---------------------------------------------
from .fhir.models import LabCodeMap, LabReport, LabReportVersion, LabSender, PendingLabResult  # noqa: E402, F401
