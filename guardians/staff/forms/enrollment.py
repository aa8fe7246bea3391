"""Enrollment forms: TOTP confirmation, biometric consent, face photos."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from guardians import services
from guardians.models import FaceConsent
from lookups.faces.errors import ProbeRejected
from lookups.faces.images import MAX_UPLOAD_BYTES

DEFAULT_FACE_CONSENT_TEXT = (
    "I agree that Kinguard stores a mathematical template of my face (not the photo), encrypted, "
    "to confirm that it is me when I look up test results. The photos taken now are not kept. "
    "I can withdraw this consent at the clinic at any time, and the template is then deleted."
)


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
        super().clean()
        data = self.cleaned_data
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
    """1 to 5 photos (5 recommended: the match was calibrated on 5-photo templates); each goes
    through the pipeline's quality gate."""

    photos = MultipleImageField(
        label=_("Photos of the face (1 to 5; 5 recommended)"),
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
