"""Who may act for whom: people, clinics, staff, authorizations, face enrollments.

State on Authorization changes only through ``guardians.services`` (one write path).
"""

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A login account: clinic staff, a guardian, or an elder using their own results.

    ``face_failures`` counts consecutive failed face checks of this account across
    lookups; ``face_retry_not_before`` is the end of the current back-off delay.
    """

    face_failures = models.PositiveIntegerField(default=0)
    face_retry_not_before = models.DateTimeField(null=True, blank=True)
    # Display preferences (the user's own choice, changed through guardians.services).
    large_text = models.BooleanField(_("large text, high contrast"), default=False)
    preferred_language = models.CharField(
        _("preferred language"), max_length=10, blank=True, choices=settings.LANGUAGES
    )

    if TYPE_CHECKING:
        # Set on request.user by django_otp: OTPMiddleware (whether a code was verified this
        # session, and with which device) and the sign-in form (the device it verified).
        otp_device: Any

        def is_verified(self) -> bool: ...


class Clinic(models.Model):
    name = models.CharField(max_length=200, unique=True)
    address = models.CharField(max_length=300, blank=True)
    phone = models.CharField(max_length=40, blank=True)

    def __str__(self) -> str:
        return self.name


class StaffMembership(models.Model):
    class Role(models.TextChoices):
        STAFF = "staff", _("Clinic staff")
        MANAGER = "manager", _("Clinic manager")
        AUDITOR = "auditor", _("Auditor")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.STAFF)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_clinic")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.clinic} ({self.role})"


class Person(models.Model):
    """A real person known to a clinic: an elder, a guardian, or both.

    The ID number is stored only as a keyed hash (unique; finds duplicates and matches lab
    imports) plus ciphertext; ``id_number_masked`` is what screens show.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="people")
    full_name = models.CharField(max_length=200)
    id_number_hash = models.CharField(max_length=64, unique=True)
    id_number_ciphertext = models.BinaryField()
    id_number_masked = models.CharField(max_length=18)
    birth_date = models.DateField()
    phone = models.CharField(max_length=40, blank=True)
    notify_email = models.EmailField(blank=True)
    is_elder = models.BooleanField(default=False)
    is_guardian = models.BooleanField(default=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="person"
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "people"
        indexes = [models.Index(fields=["clinic", "full_name"])]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.id_number_masked})"


class Authorization(models.Model):
    """A staff-registered permission for one guardian to look up one elder's results.

    Active only while ``status == ACTIVE`` and ``valid_from <= now < valid_until``; there
    is no open-ended authorization. Checked again at every lookup step and on every
    results page, so a revocation takes effect immediately.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending approval")
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        REVOKED = "revoked", _("Revoked")
        EXPIRED = "expired", _("Expired")

    class Relationship(models.TextChoices):
        CHILD = "child", _("Son or daughter")
        SPOUSE = "spouse", _("Spouse")
        GRANDCHILD = "grandchild", _("Grandchild")
        SIBLING = "sibling", _("Brother or sister")
        CARER = "carer", _("Professional carer")
        LEGAL_GUARDIAN = "legal_guardian", _("Legal guardian")
        OTHER = "other", _("Other relative")

    class Scope(models.TextChoices):
        TEST_RESULTS = "test_results", _("Test results")

    class ConsentBasis(models.TextChoices):
        ELDER_PRESENT = "elder_present", _("Elder present and agreed")
        LEGAL_DOCUMENT = "legal_document", _("Legal document (incapacity)")

    class EndRequestedBy(models.TextChoices):
        ELDER = "elder", _("At the elder's request")
        GUARDIAN = "guardian", _("At the guardian's request")
        CLINIC = "clinic", _("At the clinic's decision")

    guardian = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="authorizations_as_guardian")
    elder = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="authorizations_as_elder")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="authorizations")
    relationship = models.CharField(max_length=20, choices=Relationship.choices)
    scope = models.CharField(max_length=20, choices=Scope.choices, default=Scope.TEST_RESULTS)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField()
    consent_basis = models.CharField(max_length=20, choices=ConsentBasis.choices)
    consent_reference = models.CharField(max_length=200, blank=True)
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    registered_at = models.DateTimeField(default=timezone.now)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=300, blank=True)
    end_requested_by = models.CharField(max_length=10, choices=EndRequestedBy.choices, blank=True)

    class Meta:
        indexes = [models.Index(fields=["guardian", "status"]), models.Index(fields=["elder", "status"])]
        constraints = [
            models.CheckConstraint(condition=~Q(guardian=models.F("elder")), name="guardian_is_not_elder"),
            models.CheckConstraint(condition=Q(valid_until__gt=models.F("valid_from")), name="ends_after_start"),
        ]

    def __str__(self) -> str:
        return f"{self.guardian.full_name} → {self.elder.full_name} ({self.status})"

    def is_active_at(self, when: dt.datetime) -> bool:
        return self.status == self.Status.ACTIVE and self.valid_from <= when < self.valid_until


class RemovalRequest(models.Model):
    """The elder asked the clinic to remove one of their authorizations (a domain fact, audited
    too). Nothing changes on the authorization: staff revoke it after an ID check in person.
    One request per authorization (the one-to-one is the "recorded once" rule)."""

    authorization = models.OneToOneField(Authorization, on_delete=models.PROTECT, related_name="removal_request")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"Removal requested for authorization {self.authorization_id}"


class FaceEnrollment(models.Model):
    """The reference template of one person: a mean 128-d embedding, encrypted at rest.

    No photo is kept. Re-enrollment replaces the template (one row per person).
    """

    person = models.OneToOneField(Person, on_delete=models.CASCADE, related_name="face_enrollment")
    template_ciphertext = models.BinaryField()
    model_version = models.CharField(max_length=120)
    sample_count = models.PositiveSmallIntegerField()
    consent_text = models.TextField()
    consented_at = models.DateTimeField()
    enrolled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    enrolled_at = models.DateTimeField(default=timezone.now)
    consent = models.ForeignKey(
        "FaceConsent", null=True, blank=True, on_delete=models.PROTECT, related_name="enrollments"
    )

    def __str__(self) -> str:
        return f"Face template of {self.person.full_name}"


# --- staff workspace (in-person checks and consent records) -------------------------------


class IdentityCheck(models.Model):
    """A staff member's in-person check of a person's identity document.

    Records which kind of document was shown, who checked it and when; the document's
    number is never stored here (the resident ID number lives on Person, hashed and
    encrypted).
    """

    class DocumentType(models.TextChoices):
        RESIDENT_ID_CARD = "resident_id_card", _("Resident identity card")
        TEMPORARY_ID_CARD = "temporary_id_card", _("Temporary resident identity card")
        HOUSEHOLD_REGISTER = "household_register", _("Household register (hukou booklet)")
        PASSPORT = "passport", _("Passport")
        OTHER = "other", _("Other official photo ID")

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="identity_checks")
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="+")
    document_type = models.CharField(max_length=30, choices=DocumentType.choices)
    note = models.CharField(max_length=200, blank=True)
    checked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["person", "-checked_at"])]

    def __str__(self) -> str:
        return f"{self.get_document_type_display()} checked by {self.checked_by} at {self.checked_at:%Y-%m-%d %H:%M}"


class FaceConsent(models.Model):
    """The separate biometric consent, recorded before a face is enrolled.

    Keeps the exact text shown, who gave it (the person or their legal representative),
    the staff member who recorded it and when. ``used_at`` is set when an enrollment was
    made under it: one consent, one enrollment.
    """

    class GivenBy(models.TextChoices):
        PERSON = "person", _("The person themselves")
        REPRESENTATIVE = "representative", _("Their legal representative")

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="face_consents")
    consent_text = models.TextField()
    given_by = models.CharField(max_length=20, choices=GivenBy.choices, default=GivenBy.PERSON)
    representative_name = models.CharField(max_length=200, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["person", "-recorded_at"])]

    def __str__(self) -> str:
        return f"Biometric consent of {self.person.full_name} ({self.recorded_at:%Y-%m-%d %H:%M})"
