"""Forms of the staff workspace. Validation mirrors the services (which check again).

Forms never write: views pass cleaned data to ``guardians.services`` / ``lookups.services``.
Fields are large and labelled in plain words; a failed submit re-renders every value typed
(file inputs excepted, which browsers cannot refill).
"""

from __future__ import annotations

import datetime as dt
import io
import uuid

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_otp.forms import OTPAuthenticationFormMixin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from lookups import face_pipeline
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


class StaffLoginForm(OTPAuthenticationFormMixin, AuthenticationForm):
    """Username, password and a code from the staff member's authenticator (or a backup code).

    The device is chosen from the code's shape (6 digits: the TOTP device, 8 digits: the
    printed backup codes), so nobody has to pick a device from a list. Accounts that are
    not members of a clinic are refused with the same message as a wrong password.
    """

    otp_token = forms.CharField(
        label=_("Code from your authenticator app"),
        max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code"}),
    )
    otp_error_messages = dict(
        OTPAuthenticationFormMixin.otp_error_messages,
        token_required=_("Enter the 6-digit code from your authenticator app."),
        invalid_token=_("That code is not correct. Check your authenticator app and try again."),
        device_required=_("This account has no authenticator. Ask your clinic manager to enroll one."),
    )

    def confirm_login_allowed(self, user: User) -> None:
        super().confirm_login_allowed(user)
        if not permissions.has_staff_workspace(user):
            raise self.get_invalid_login_error()

    def clean(self):
        self.cleaned_data = super().clean()
        self.clean_otp(self.get_user())
        return self.cleaned_data

    def _chosen_device(self, user: User):
        token = (self.cleaned_data.get("otp_token") or "").strip()
        if len(token) == 8:
            return StaticDevice.objects.filter(user=user, confirmed=True).first()
        return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("-id").first()

    def _update_form(self, user: User) -> None:
        """Never send the password back to the browser (django-otp's default would)."""


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
            images.append(photo.read(face_pipeline.MAX_UPLOAD_BYTES + 1))
        try:
            self.samples = services.face_samples_from_images(images)
        except face_pipeline.ProbeRejected as exc:
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
        if upload.size > face_pipeline.MAX_UPLOAD_BYTES:
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
