"""Laboratory delivery over FHIR R4 (issue 15): senders, code maps, reports, pending results.

Invariants: a sender's API token is never stored, only its SHA-256 (``token_hash``); a sender
can deliver only for ``clinics``; the endpoint never creates a Person. A result whose ID number
matches nobody in the sender's clinics waits in ``PendingLabResult`` with its content encrypted
(``guardians.crypto``) and only the keyed hash of the ID number in clear.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from guardians.models import Clinic

# Kinguard's test kinds (lookups.models.TestResult.Kind), repeated here to avoid a circular import.
KIND_CHOICES = [
    ("nucleic_acid", _("Nucleic acid (PCR)")),
    ("antigen", _("Rapid antigen")),
    ("antibody", _("Antibody")),
    ("blood", _("Blood panel")),
    ("other", _("Other")),
]


class LabSender(models.Model):
    """A laboratory system allowed to POST results. Active while ``active`` and not revoked."""

    name = models.CharField(max_length=120, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    active = models.BooleanField(default=True)
    clinics = models.ManyToManyField(Clinic, related_name="lab_senders")
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "lookups"
        verbose_name = _("laboratory sender")
        verbose_name_plural = _("laboratory senders")

    def __str__(self) -> str:
        return self.name

    @property
    def audit_label(self) -> str:
        return f"lab:{self.name}"[:150]


class LabCodeMap(models.Model):
    """A lab's local code (or an extra LOINC code, with ``sender`` empty = global) → test kind."""

    sender = models.ForeignKey(LabSender, null=True, blank=True, on_delete=models.CASCADE, related_name="code_maps")
    system = models.CharField(max_length=200)
    code = models.CharField(max_length=64)
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)

    class Meta:
        app_label = "lookups"
        verbose_name = _("laboratory code")
        verbose_name_plural = _("laboratory codes")
        constraints = [
            models.UniqueConstraint(fields=["sender", "system", "code"], name="one_code_map_per_sender"),
            models.UniqueConstraint(
                fields=["system", "code"], condition=models.Q(sender__isnull=True), name="one_global_code_map"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.system}|{self.code} → {self.kind}"


class LabReport(models.Model):
    """One DiagnosticReport received, keyed by the lab's own identifier (redelivery = no-op)."""

    class Outcome(models.TextChoices):
        RECORDED = "recorded", _("Recorded for a registered person")
        PENDING = "pending", _("Waiting for a registration")
        WITHDRAWN = "withdrawn", _("Withdrawn by the laboratory (entered in error)")
        DISCARDED = "discarded", _("Discarded at the desk (nobody registered)")

    sender = models.ForeignKey(LabSender, on_delete=models.PROTECT, related_name="reports")
    identifier = models.CharField(max_length=300)
    status = models.CharField(max_length=20)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    results = models.ManyToManyField("lookups.TestResult", blank=True, related_name="lab_reports")
    received_at = models.DateTimeField(default=timezone.now)
    #: 1 for the first delivery, +1 per correction or withdrawal; earlier ones in LabReportVersion.
    version = models.PositiveIntegerField(default=1)
    #: Keyed hash of the current rows (values included), so a repeated correction is a no-op.
    content_digest = models.CharField(max_length=64, blank=True)
    corrected_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "lookups"
        verbose_name = _("lab report")
        verbose_name_plural = _("lab reports")
        constraints = [models.UniqueConstraint(fields=["sender", "identifier"], name="one_lab_report_per_identifier")]

    def __str__(self) -> str:
        return f"{self.sender}: {self.identifier}"


class LabReportVersion(models.Model):
    """An earlier version of a report, replaced by a correction or withdrawn: values encrypted."""

    report = models.ForeignKey(LabReport, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=20)
    payload_ciphertext = models.BinaryField()
    replaced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "lookups"
        verbose_name = _("lab report version")
        verbose_name_plural = _("lab report versions")
        constraints = [models.UniqueConstraint(fields=["report", "version"], name="one_lab_report_version")]

    def __str__(self) -> str:
        return f"{self.report} v{self.version}"


class PendingLabResult(models.Model):
    """A report for nobody registered (in the sender's clinics): encrypted until attached."""

    sender = models.ForeignKey(LabSender, on_delete=models.PROTECT, related_name="pending")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="pending_lab_results")
    report = models.OneToOneField(LabReport, on_delete=models.CASCADE, related_name="pending")
    id_number_hash = models.CharField(max_length=64, db_index=True)
    #: What the desk queue shows (``guardians.id_numbers.mask``), never the full number.
    id_number_masked = models.CharField(max_length=18, blank=True)
    #: Test kinds in the report (comma-separated), shown in the desk queue; no values.
    kinds = models.CharField(max_length=200, blank=True)
    payload_ciphertext = models.BinaryField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "lookups"
        verbose_name = _("pending lab result")
        verbose_name_plural = _("pending lab results")
        indexes = [models.Index(fields=["clinic", "received_at"])]

    def __str__(self) -> str:
        return f"Pending result from {self.sender} ({self.received_at:%Y-%m-%d})"

    def kind_labels(self) -> list[str]:
        labels = dict(KIND_CHOICES)
        return [str(labels.get(k, k)) for k in self.kinds.split(",") if k]
