"""Recording test results: one result, the lab file import, the reason to see a sampling photo."""

from __future__ import annotations

import datetime as dt
import io
import uuid

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from guardians import permissions
from guardians.models import Clinic, Person, User
from lookups.faces.images import MAX_UPLOAD_BYTES
from lookups.models import TestResult

from .common import DATETIME_INPUT, A, model_choice_field

# --- results ------------------------------------------------------------------------------

SAMPLING_PHOTO_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


class ResultForm(forms.Form):
    elder: forms.ModelChoiceField[Person] = forms.ModelChoiceField(
        queryset=None, to_field_name="public_id", widget=forms.HiddenInput
    )
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
        model_choice_field(self, "elder").queryset = permissions.staff_people(user, A.RECORD_RESULTS).filter(
            is_elder=True
        )

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
                extension = SAMPLING_PHOTO_FORMATS.get(image.format or "")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ValidationError(_("This file is not a JPEG, PNG or WebP photo.")) from exc
        upload.seek(0)
        if extension is None:  # not reached: Image.open accepted only these formats
            raise ValidationError(_("This file is not a JPEG, PNG or WebP photo."))
        upload.name = f"{uuid.uuid4().hex}.{extension}"
        return upload

    def clean(self):
        super().clean()
        data = self.cleaned_data
        sampled, reported = data.get("sampled_at"), data.get("reported_at")
        if sampled and reported and reported < sampled:
            self.add_error("reported_at", _("A result cannot be reported before the sample was taken."))
        now = timezone.now() + dt.timedelta(minutes=5)
        for field in ("sampled_at", "reported_at"):
            if data.get(field) and data[field] > now:
                self.add_error(field, _("This time is in the future."))
        return data


LAB_FILE_ACCEPT = ".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ResultsImportForm(forms.Form):
    clinic: forms.ModelChoiceField[Clinic] = forms.ModelChoiceField(queryset=None, label=_("Clinic"), empty_label=None)
    file = forms.FileField(
        label=_("Lab file (CSV or Excel .xlsx)"), widget=forms.ClearableFileInput(attrs={"accept": LAB_FILE_ACCEPT})
    )

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        model_choice_field(self, "clinic").queryset = permissions.staff_clinics(user, A.RECORD_RESULTS).order_by("name")


class ResultsImportConfirmForm(forms.Form):
    """Only the signed token of a checked, server-side staged file; never the rows themselves."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=500)


class PhotoReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Why do you need to see this photo?"),
        min_length=5,
        max_length=300,
        help_text=_("Recorded in the audit log with your name."),
    )
