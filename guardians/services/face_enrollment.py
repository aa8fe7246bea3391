"""Guardians services: face enrollment."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from lookups.audit import Actor, audit_record

from .. import crypto, permissions
from ..models import FaceConsent, FaceEnrollment, Person
from .common import (  # noqa: F401
    BACKUP_CODE_COUNT,
    BACKUP_CODE_DIGITS,
    FACE_CONSENT_VALID_MINUTES,
    REMOVAL_REQUEST_ACTION,
    DuplicatePerson,
    IllegalState,
    NotPermitted,
    ServiceError,
    _login_of,
    require_staff_can,
)

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)


def face_samples_from_images(images: Sequence[bytes]) -> list:
    """Decode and quality-check enrollment photos (pure computation, nothing stored).

    Raises ``ProbeRejected`` with ``.image_index`` naming the failing photo.
    """
    from lookups.faces.detection import detect_single_face
    from lookups.faces.errors import ProbeRejected
    from lookups.faces.images import load_probe_image

    if not images:
        raise ServiceError("Provide at least one photo.")
    samples = []
    for index, data in enumerate(images):
        try:
            samples.append(detect_single_face(load_probe_image(data)))
        except ProbeRejected as exc:
            exc.image_index = index
            raise
    return samples


def face_enroll(
    *,
    actor: Actor,
    person: Person,
    images: Sequence[bytes] = (),
    samples: Sequence | None = None,
    consent_id: int | None = None,
) -> FaceEnrollment:
    """Build the person's template from one or more photos and store it encrypted, under a
    current ``FaceConsent`` of this person (the separate biometric consent is required).

    ``consent_id`` names the consent; without it the latest pending one is used
    (``face_consent_pending``). No current, unused consent: ``ServiceError``, nothing written.
    The consent row is locked, so one consent yields one enrollment. Photos are processed in
    memory and never stored; ``samples`` may be passed when the caller already ran
    ``face_samples_from_images`` (e.g. in form validation). The template is the mean
    embedding. Re-enrollment replaces the previous template, audited.
    """
    from lookups.faces.matching import MODEL_VERSION, build_template, encode_template_bytes

    require_staff_can(actor, permissions.StaffAction.ENROLL, person.clinic_id)
    now = timezone.now()
    if consent_id is None and face_consent_pending(person, now) is None:
        raise ServiceError("Record the person's biometric consent first.")  # before any photo is read
    if samples is None:
        samples = face_samples_from_images(images)
    if not samples:
        raise ServiceError("Provide at least one photo.")
    template = build_template(samples)
    with transaction.atomic():
        Person.objects.select_for_update().get(pk=person.pk)
        if consent_id is None:
            pending = face_consent_pending(person, now)
            consent_id = pending.pk if pending is not None else None
        consent = (
            FaceConsent.objects.select_for_update().filter(pk=consent_id, person=person).first()
            if consent_id is not None
            else None
        )
        if consent is None or consent.used_at is not None:
            raise ServiceError("Record the person's biometric consent first.")
        if consent.recorded_at < now - dt.timedelta(minutes=FACE_CONSENT_VALID_MINUTES):
            raise ServiceError(
                f"The consent was recorded more than {FACE_CONSENT_VALID_MINUTES} minutes ago. Please record it again."
            )
        replaced = FaceEnrollment.objects.filter(person=person).delete()[0] > 0
        enrollment = FaceEnrollment.objects.create(
            person=person,
            template_ciphertext=crypto.encrypt(encode_template_bytes(template)),
            model_version=MODEL_VERSION,
            sample_count=len(samples),
            consent=consent,
            consent_text=consent.consent_text,
            consented_at=consent.recorded_at,
            enrolled_by=actor.user,
        )
        consent.used_at = now
        consent.save(update_fields=["used_at"])
        audit_record(
            actor=actor,
            action="face.enrolled",
            outcome="replaced" if replaced else "new",
            subject=person,
            target=enrollment,
            clinic=person.clinic,
            details={"samples": len(samples), "model_version": MODEL_VERSION},
        )
    return enrollment


def face_enrollment_withdraw(*, actor: Actor, person: Person, reason: str) -> bool:
    """The person withdrew their biometric consent: delete their face template now.

    Locks the person row; audited (``face.consent_withdrawn``) in the same transaction.
    Lookups needing a face then stop at the face step ("not enrolled") until a new consent
    and enrollment. Returns False when there was no template.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give a reason (for example: at the person's request).")
    require_staff_can(actor, permissions.StaffAction.ENROLL, person.clinic_id)
    with transaction.atomic():
        Person.objects.select_for_update().get(pk=person.pk)
        enrollment = FaceEnrollment.objects.filter(person=person).first()
        if enrollment is None:
            return False
        audit_record(
            actor=actor,
            action="face.consent_withdrawn",
            outcome="template_deleted",
            subject=person,
            clinic=person.clinic,
            details={"reason": reason[:300], "enrolled_at": enrollment.enrolled_at},
        )
        enrollment.delete()
    return True


def face_template_of(person: Person) -> np.ndarray | None:
    """Decrypt a person's reference template (numpy vector) or None if not enrolled."""
    from lookups.faces.matching import decode_template_bytes

    enrollment = FaceEnrollment.objects.filter(person=person).first()
    if enrollment is None:
        return None
    return decode_template_bytes(crypto.decrypt(bytes(enrollment.template_ciphertext)))


def face_cohort_of(person: Person) -> np.ndarray | None:
    """The other enrolled templates (N x 128 numpy array, or None when there are none): the
    cohort of the match rule (``lookups.faces.matching.decide``). A look-alike who is enrolled
    herself (a sister, a relative holding the phone) is nearer to her own template and is
    refused. Only templates of the current MODEL_VERSION count; the result is used only to
    refuse, never stored, logged or audited, and never says whose template was nearer."""
    import numpy as np

    from lookups.faces.matching import MODEL_VERSION, decode_template_bytes

    rows = (
        FaceEnrollment.objects.filter(model_version=MODEL_VERSION)
        .exclude(person=person)
        .values_list("pk", "template_ciphertext")
    )
    templates = []
    for pk, ciphertext in rows.iterator():
        try:
            templates.append(decode_template_bytes(crypto.decrypt(bytes(ciphertext))))
        except (crypto.DecryptionError, ValueError):
            # one unreadable row must not stop every face check; it only weakens the cohort
            logger.warning("face enrollment %s is unreadable; left out of the match cohort", pk)
    return np.stack(templates) if templates else None


def face_consent_record(
    *, actor: Actor, person: Person, consent_text: str, given_by: str, representative_name: str = ""
) -> FaceConsent:
    """Record the separate biometric consent (the exact text shown, who gave it) before enrolling."""
    staff = require_staff_can(actor, permissions.StaffAction.ENROLL, person.clinic_id)
    consent_text = consent_text.strip()
    if not consent_text:
        raise ServiceError("The consent text shown to the person is required.")
    if given_by not in FaceConsent.GivenBy.values:
        raise ServiceError("Say who gave the consent.")
    representative_name = representative_name.strip()
    if given_by == FaceConsent.GivenBy.REPRESENTATIVE and not representative_name:
        raise ServiceError("Give the legal representative's name.")
    with transaction.atomic():
        consent = FaceConsent.objects.create(
            person=person,
            consent_text=consent_text,
            given_by=given_by,
            representative_name=representative_name[:200] if given_by == FaceConsent.GivenBy.REPRESENTATIVE else "",
            recorded_by=staff,
        )
        audit_record(
            actor=actor,
            action="face.consent_recorded",
            outcome=given_by,
            subject=person,
            target=consent,
            clinic=person.clinic,
        )
    return consent


def face_consent_pending(person: Person, now: dt.datetime | None = None) -> FaceConsent | None:
    """The person's latest unused consent recorded within FACE_CONSENT_VALID_MINUTES, if any."""
    now = now or timezone.now()
    return (
        FaceConsent.objects.filter(
            person=person,
            used_at__isnull=True,
            recorded_at__gte=now - dt.timedelta(minutes=FACE_CONSENT_VALID_MINUTES),
        )
        .order_by("-recorded_at")
        .first()
    )


def face_enroll_with_consent(*, actor: Actor, person: Person, consent_id: int, samples: Sequence) -> FaceEnrollment:
    """``face_enroll`` under the named consent (the workspace's step 2)."""
    return face_enroll(actor=actor, person=person, consent_id=consent_id, samples=samples)
