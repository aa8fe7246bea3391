"""Forms of the staff workspace. Validation mirrors the services (which check again).

Forms never write: views pass cleaned data to ``guardians.services`` / ``lookups.services``.
Fields are large and labelled in plain words; a failed submit re-renders every value typed
(file inputs excepted, which browsers cannot refill).
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
import uuid

from django import forms
from django.contrib.auth import authenticate, user_login_failed
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_otp.forms import otp_verification_failed
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from lookups.faces.errors import ProbeRejected
from lookups.faces.images import MAX_UPLOAD_BYTES
from lookups.models import TestResult

from . import id_numbers, permissions, phones, services
from .models import Authorization, FaceConsent, IdentityCheck, Person, User

A = permissions.StaffAction
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}, format="%Y-%m-%dT%H:%M")
MAX_AUTHORIZATION_YEARS = 5

DEFAULT_FACE_CONSENT_TEXT = (
    "I agree that Kinguard stores a mathematical template of my face (not the photo), encrypted, "
    "to confirm that it is me when I look up test results. The photos taken now are not kept. "
    "I can withdraw this consent at the clinic at any time, and the template is then deleted."
)


def end_of_day_after(day: dt.date) -> dt.datetime:
    """An authorization valid "until 2027-05-01" ends at midnight after that day (local time)."""
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))


# --- sign-in ------------------------------------------------------------------------------


class _CodeInput(forms.TextInput):
    """A text input that never refills: a refused code is not sent back to the browser."""

    def format_value(self, value):
        return None


class StaffLoginForm(AuthenticationForm):
    """Username, password and a code from the staff member's authenticator (or a backup code).

    Used by ``/staff/login/`` and, as ``AdminLoginForm``, by ``/admin/login/``.

    Invariants (issue 10 item 3, no oracle before both factors):

    * Every failure before both factors have passed -- unknown user, wrong password, right
      password with a wrong/missing/throttled code, no authenticator, inactive account --
      raises the same error (same message, same code path: the password check always runs,
      and Django's ``authenticate`` runs the hasher for unknown users too; the one-time code
      is always verified, against the user's device or against a throw-away TOTP key when the
      password was wrong). The reason is kept in the error's ``code`` for the audit log only.
    * A failed second factor is reported to django-axes as a failed sign-in
      (``user_login_failed``), so the lockout counts code guesses as well as password guesses.
    * Only after both factors passed may the page say something specific (``no_workspace``).
    * The device is chosen from the code's shape (6 digits: the TOTP device, 8 digits: the
      printed backup codes); there is no device drop-down and the password is never echoed.
    """

    #: Refuse (after both factors) accounts without a clinic membership: the workspace form.
    require_workspace = True
    #: Refuse (with the generic error) accounts without ``is_staff``: the admin form.
    require_is_staff = False

    otp_token = forms.CharField(
        label=_("Code from your authenticator app"),
        max_length=8,
        required=False,
        widget=_CodeInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )
    error_messages = {
        "invalid_login": _(
            "The username, password or code is not correct. Check them and try again "
            "(the code is the 6-digit one from your authenticator app, or an 8-digit backup code)."
        ),
        "inactive": _("This account is inactive."),
        "no_workspace": _("This account has no clinic workspace. Auditors and administrators sign in at /admin/."),
        "no_workspace_other": _("This account has no clinic workspace."),
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        token = (self.cleaned_data.get("otp_token") or "").strip()
        user = None
        if username is not None and password:
            # Django's ModelBackend runs the hasher for unknown users too; axes counts failures.
            user = authenticate(self.request, username=username, password=password)
        reason = "invalid_login" if user is None else ""
        device, otp_reason = self._verify_second_factor(user, token)
        reason = reason or otp_reason
        if not reason and self.require_is_staff and not user.is_staff:
            reason = "not_staff"
        if reason:
            if user is not None:
                # The password was right but the sign-in failed: count it for the lockout.
                user_login_failed.send(sender=__name__, credentials={"username": username}, request=self.request)
            raise ValidationError(self.error_messages["invalid_login"], code=reason)
        # Both factors passed: from here on the page may be specific.
        self.confirm_login_allowed(user)
        user.otp_device = device  # django-otp's login signal stores it in the session
        self.user_cache = user
        return self.cleaned_data

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if self.require_workspace and not permissions.has_staff_workspace(user):
            if user.is_staff or user.is_superuser:
                raise ValidationError(self.error_messages["no_workspace"], code="no_workspace")
            raise ValidationError(self.error_messages["no_workspace_other"], code="no_workspace")

    def _verify_second_factor(self, user: User | None, token: str) -> tuple[object | None, str]:
        """Verify ``token`` for ``user`` -- or, when the password was wrong, against a dummy key.

        Returns ``(device, "")`` on success, else ``(None, reason)``. The same queries and the
        same TOTP computation run in every case, so the response time does not tell whether the
        password was right. The device row is locked so a code is accepted once."""
        user_id = user.pk if user is not None else None
        backup = len(token) == 8
        model = StaticDevice if backup else TOTPDevice
        with transaction.atomic():
            device = model.objects.select_for_update().filter(user_id=user_id, confirmed=True).order_by("-id").first()
            if device is None:
                _dummy_totp_verify(token)
                return None, ("invalid_login" if user is None else "no_device")
            allowed, _extra = device.verify_is_allowed()
            if not allowed:
                _dummy_totp_verify(token)
                return None, "throttled"
            if not token:
                _dummy_totp_verify(token)
                return None, "token_required"
            if device.verify_token(token):
                return device, ""
        otp_verification_failed.send(sender=type(self), user=user)
        return None, "invalid_token"

    def get_invalid_login_error(self) -> ValidationError:
        return ValidationError(self.error_messages["invalid_login"], code="invalid_login")


def _dummy_totp_verify(token: str) -> bool:
    """The TOTP computation a real device does, against a random key (always ``False``)."""
    totp = TOTP(secrets.token_bytes(20), step=30, t0=0, digits=6, drift=0)
    try:
        value = int(token)
    except ValueError:
        value = -1
    totp.verify(value, tolerance=1)
    return False


class AdminLoginForm(StaffLoginForm):
    """The admin's sign-in: the staff form, for ``is_staff`` accounts, membership not needed
    (auditors and superusers without a clinic sign in here)."""

    require_workspace = False
    require_is_staff = True


# --- registration -------------------------------------------------------------------------


class PersonRegisterForm(forms.Form):
    """Register an elder or a guardian after checking their identity document in person."""

    clinic = forms.ModelChoiceField(queryset=None, label=_("Clinic"), empty_label=None)
    full_name = forms.CharField(label=_("Full name (as on the document)"), max_length=200)
    id_number = forms.CharField(
        label=_("Resident ID number (18 characters)"),
        max_length=24,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "text"}),
    )
    birth_date = forms.DateField(
        label=_("Date of birth (as on the document)"),
        widget=DATE_INPUT,
        help_text=_("Checked against the date inside the ID number."),
    )
    document_type = forms.ChoiceField(
        label=_("Identity document checked in person"),
        choices=IdentityCheck.DocumentType.choices,
        initial=IdentityCheck.DocumentType.RESIDENT_ID_CARD,
        widget=forms.RadioSelect,
    )
    document_note = forms.CharField(
        label=_("Note on the document (optional)"),
        max_length=200,
        required=False,
        help_text=_("For example: expiry date, or who brought it. Do not type the document number here."),
    )
    phone = forms.CharField(
        label=_("Mobile phone"),
        max_length=40,
        required=False,
        help_text=_("Mainland numbers without +86; other countries with their code."),
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )
    notify_email = forms.EmailField(
        label=_("Contact for notifications (e-mail)"),
        required=False,
        help_text=_("Where we tell the person that their results were looked up."),
    )

    role = "elder"

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.duplicate: Person | None = None
        self.duplicate_visible = False
        clinics = permissions.staff_clinics(user, A.REGISTER).order_by("name")
        self.fields["clinic"].queryset = clinics
        clinic_list = list(clinics)
        if len(clinic_list) == 1:
            self.fields["clinic"].initial = clinic_list[0].pk

    def clean_id_number(self) -> str:
        try:
            number, _birth = id_numbers.validate(self.cleaned_data["id_number"])
        except id_numbers.InvalidIdNumber as exc:
            raise ValidationError(str(exc)) from exc
        try:
            services.person_check_not_registered(id_number=number)
        except services.DuplicatePerson as exc:
            self.duplicate = exc.existing
            self.duplicate_visible = permissions.staff_people(self.user, A.VIEW).filter(pk=exc.existing.pk).exists()
            if self.duplicate_visible:
                raise ValidationError(
                    _("This person is already registered at your clinic (see the link below).")
                ) from exc
            raise ValidationError(
                _("A person with this ID number is already registered at another clinic. Ask that clinic to help.")
            ) from exc
        return number

    def clean_phone(self) -> str:
        try:
            return phones.normalize(self.cleaned_data.get("phone", ""))
        except phones.InvalidPhoneNumber as exc:
            raise ValidationError(phones.INVALID_MESSAGE, code="invalid_phone") from exc

    def clean(self):
        data = super().clean()
        if data.get("id_number") and data.get("birth_date"):
            try:
                services.id_number_check_birth_date(id_number=data["id_number"], birth_date=data["birth_date"])
            except services.ServiceError as exc:
                self.add_error("birth_date", str(exc))
        return data


class ElderRegisterForm(PersonRegisterForm):
    role = "elder"


class GuardianRegisterForm(PersonRegisterForm):
    role = "guardian"
    username = forms.CharField(
        label=_("Login name for the guardian"),
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text=_("Letters, digits and . _ - only. The guardian sets a password through a one-time link."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )
    also_elder = forms.BooleanField(
        label=_("This person is also an elder whose own results are recorded here"), required=False
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError(_("This login name is taken. Please choose another."))
        return username


class AccountCreateForm(forms.Form):
    username = forms.CharField(
        label=_("Login name"),
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError(_("This login name is taken. Please choose another."))
        return username


# --- OTP, backup codes, face --------------------------------------------------------------


class TotpConfirmForm(forms.Form):
    device = forms.IntegerField(widget=forms.HiddenInput)
    token = forms.CharField(
        label=_("The 6-digit code now shown in the guardian's app"),
        min_length=6,
        max_length=6,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "autofocus": True}),
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].replace(" ", "")
        if not token.isdigit():
            raise ValidationError(_("The code has digits only."))
        return token


class FaceConsentForm(forms.Form):
    consent_text = forms.CharField(
        label=_("Consent text shown to the person"),
        widget=forms.Textarea(attrs={"rows": 5}),
        initial=DEFAULT_FACE_CONSENT_TEXT,
    )
    given_by = forms.ChoiceField(
        label=_("Who gave the consent"),
        choices=FaceConsent.GivenBy.choices,
        initial=FaceConsent.GivenBy.PERSON,
        widget=forms.RadioSelect,
    )
    representative_name = forms.CharField(
        label=_("Name of the legal representative (only if they gave it)"), max_length=200, required=False
    )
    confirmed = forms.BooleanField(label=_("The text was read by (or to) the person, and they agreed"))

    def clean(self):
        data = super().clean()
        if (
            data.get("given_by") == FaceConsent.GivenBy.REPRESENTATIVE
            and not data.get("representative_name", "").strip()
        ):
            self.add_error("representative_name", _("Give the legal representative's name."))
        return data


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class FaceEnrollForm(forms.Form):
    """1 to 5 photos (3 recommended); each goes through the pipeline's quality gate."""

    photos = MultipleImageField(
        label=_("Photos of the face (1 to 5; 3 recommended)"),
        help_text=_("Take them with the camera above, or choose files. Photos are not kept."),
    )

    def clean_photos(self) -> list[bytes]:
        photos = self.cleaned_data["photos"]
        if not 1 <= len(photos) <= 5:
            raise ValidationError(_("Use between 1 and 5 photos."))
        images = []
        for photo in photos:
            photo.seek(0)
            images.append(photo.read(MAX_UPLOAD_BYTES + 1))
        try:
            self.samples = services.face_samples_from_images(images)
        except ProbeRejected as exc:
            index = getattr(exc, "image_index", 0)
            self.rejection = exc
            raise ValidationError(
                _("Photo %(n)d of %(total)d: %(message)s"),
                code=exc.code,
                params={"n": index + 1, "total": len(images), "message": exc.message},
            ) from exc
        return images


# --- authorizations -----------------------------------------------------------------------


class AuthorizationForm(forms.Form):
    elder = forms.ModelChoiceField(queryset=None, to_field_name="public_id", widget=forms.HiddenInput)
    guardian = forms.ModelChoiceField(queryset=None, to_field_name="public_id", widget=forms.HiddenInput)
    relationship = forms.ChoiceField(label=_("The guardian is the elder's"), choices=Authorization.Relationship.choices)
    scope = forms.ChoiceField(
        label=_("What the guardian may look up"),
        choices=Authorization.Scope.choices,
        initial=Authorization.Scope.TEST_RESULTS,
        widget=forms.RadioSelect,
    )
    valid_until = forms.DateField(
        label=_("Valid until (inclusive)"),
        widget=DATE_INPUT,
        help_text=_("12 months from today unless you change it. Every authorization ends."),
    )
    consent_basis = forms.ChoiceField(
        label=_("Consent"),
        choices=Authorization.ConsentBasis.choices,
        initial=Authorization.ConsentBasis.ELDER_PRESENT,
        widget=forms.RadioSelect,
    )
    consent_reference = forms.CharField(
        label=_("Reference of the legal document (court order, notarised power of attorney …)"),
        max_length=200,
        required=False,
    )

    def __init__(self, *args, user: User, actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        people = permissions.staff_people(user, A.MANAGE_AUTHORIZATIONS)
        self.fields["elder"].queryset = people.filter(is_elder=True)
        self.fields["guardian"].queryset = people.filter(is_guardian=True)
        self.fields["valid_until"].initial = timezone.localdate() + dt.timedelta(days=365)

    def clean_valid_until(self) -> dt.date:
        day = self.cleaned_data["valid_until"]
        today = timezone.localdate()
        if day < today:
            raise ValidationError(_("The end date cannot be in the past."))
        if day > today + dt.timedelta(days=365 * MAX_AUTHORIZATION_YEARS):
            raise ValidationError(_("At most %d years ahead; renew it later instead.") % MAX_AUTHORIZATION_YEARS)
        return day

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if data["consent_basis"] == Authorization.ConsentBasis.LEGAL_DOCUMENT and not data["consent_reference"].strip():
            self.add_error("consent_reference", _("A legal document basis needs the document's reference."))
            return data
        if data["elder"].clinic_id != data["guardian"].clinic_id:
            raise ValidationError(_("The guardian and the elder must be registered at the same clinic."))
        try:
            services.authorization_check_request(
                actor=self.actor,
                guardian=data["guardian"],
                elder=data["elder"],
                consent_basis=data["consent_basis"],
                consent_reference=data["consent_reference"],
                valid_until=end_of_day_after(data["valid_until"]),
            )
        except services.ServiceError as exc:
            raise ValidationError(str(exc)) from exc
        return data


class AuthorizationEndForm(forms.Form):
    requested_by = forms.ChoiceField(
        label=_("Whose request is it?"), choices=Authorization.EndRequestedBy.choices, widget=forms.RadioSelect
    )
    reason = forms.CharField(label=_("Reason"), max_length=300)


class AuthorizationRenewForm(forms.Form):
    valid_until = forms.DateField(label=_("New end date (inclusive)"), widget=DATE_INPUT)

    def clean_valid_until(self) -> dt.date:
        day = self.cleaned_data["valid_until"]
        today = timezone.localdate()
        if day < today:
            raise ValidationError(_("The new end date must be today or later."))
        if day > today + dt.timedelta(days=365 * MAX_AUTHORIZATION_YEARS):
            raise ValidationError(_("At most %d years ahead.") % MAX_AUTHORIZATION_YEARS)
        return day


# --- results ------------------------------------------------------------------------------

SAMPLING_PHOTO_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


class ResultForm(forms.Form):
    elder = forms.ModelChoiceField(queryset=None, to_field_name="public_id", widget=forms.HiddenInput)
    kind = forms.ChoiceField(label=_("Test"), choices=TestResult.Kind.choices)
    sampled_at = forms.DateTimeField(label=_("Sample taken at"), widget=DATETIME_INPUT)
    site = forms.CharField(label=_("Sampling site"), max_length=200)
    lab = forms.CharField(label=_("Laboratory"), max_length=200)
    result = forms.CharField(label=_("Result"), max_length=200)
    reported_at = forms.DateTimeField(label=_("Reported at"), widget=DATETIME_INPUT)
    sampling_photo = forms.FileField(
        label=_("Photo taken at sampling (optional; staff only, never shown to guardians)"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["elder"].queryset = permissions.staff_people(user, A.RECORD_RESULTS).filter(is_elder=True)

    def clean_sampling_photo(self):
        """A real JPEG/PNG/WebP of at most 10 MB, stored under a random name."""
        from PIL import Image, UnidentifiedImageError

        upload = self.cleaned_data.get("sampling_photo")
        if not upload:
            return None
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(_("The photo is larger than 10 MB."))
        upload.seek(0)
        data = upload.read()
        try:
            with Image.open(io.BytesIO(data), formats=tuple(SAMPLING_PHOTO_FORMATS)) as image:
                image.verify()
                kind = image.format
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ValidationError(_("This file is not a JPEG, PNG or WebP photo.")) from exc
        upload.seek(0)
        upload.name = f"{uuid.uuid4().hex}.{SAMPLING_PHOTO_FORMATS[kind]}"
        return upload

    def clean(self):
        data = super().clean()
        sampled, reported = data.get("sampled_at"), data.get("reported_at")
        if sampled and reported and reported < sampled:
            self.add_error("reported_at", _("A result cannot be reported before the sample was taken."))
        now = timezone.now() + dt.timedelta(minutes=5)
        for field in ("sampled_at", "reported_at"):
            if data.get(field) and data[field] > now:
                self.add_error(field, _("This time is in the future."))
        return data


class ResultsImportForm(forms.Form):
    clinic = forms.ModelChoiceField(queryset=None, label=_("Clinic"), empty_label=None)
    file = forms.FileField(
        label=_("Lab export (CSV, UTF-8)"), widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"})
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = permissions.staff_clinics(user, A.RECORD_RESULTS).order_by("name")


class PhotoReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Why do you need to see this photo?"),
        min_length=5,
        max_length=300,
        help_text=_("Recorded in the audit log with your name."),
    )


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Search by name"), max_length=100, required=False)


class ReverifyForm(forms.Form):
    otp_token = forms.CharField(
        label=_("Code from your authenticator app"),
        min_length=6,
        max_length=6,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True}),
    )

    def clean_otp_token(self) -> str:
        token = self.cleaned_data["otp_token"].strip()
        if not token.isdigit():
            raise forms.ValidationError(_("The code has digits only."))
        return token
