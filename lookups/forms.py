from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from . import capture_budget
from .messages import face_reason_message

# The camera page records this many frames over BURST_DURATION_MS (see camera.js): the
# prompted-liveness capture of issue 11, ~3.5 s at 10 fps, each frame <= BURST_MAX_SIDE px.
BURST_FRAMES = 35
BURST_DURATION_MS = 3500
BURST_MAX_SIDE = 640
# The most frames one upload may carry (the decode budget's limit; >= BURST_FRAMES).
MAX_BURST_FRAMES = capture_budget.MAX_CAPTURE_FRAMES


class OtpForm(forms.Form):
    token = forms.CharField(
        label=_("6-digit code from your authenticator app"),
        min_length=6,
        max_length=8,
        widget=forms.TextInput(
            attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True, "pattern": "[0-9 ]*"}
        ),
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].replace(" ", "")
        if not token.isdigit():
            raise forms.ValidationError(_("The code has digits only."))
        return token


class FacePhotoForm(forms.Form):
    """The upload fallback: one still photo (only where KINGUARD_ALLOW_STILL_UPLOAD)."""

    photo = forms.FileField(
        label=_("A photo of your face"),
        widget=forms.ClearableFileInput(attrs={"accept": "image/*", "capture": "user"}),
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files under one name (Django's documented pattern for multiple uploads)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class FaceBurstForm(forms.Form):
    """The camera burst: several JPEG frames in one multipart form (field ``frames``)."""

    frames = MultipleFileField(required=False)

    def clean_frames(self) -> list:
        files = self.cleaned_data.get("frames") or []
        if len(files) < 3:
            raise forms.ValidationError(face_reason_message("too_few_frames"))
        if len(files) > MAX_BURST_FRAMES:
            raise forms.ValidationError(face_reason_message("too_many_frames"))
        try:
            capture_budget.check_capture(files)  # headers only: nothing is decoded over budget
        except capture_budget.CaptureOverBudget as exc:
            raise forms.ValidationError(face_reason_message(exc.code)) from exc
        return files


def still_upload_allowed() -> bool:
    return bool(settings.KINGUARD_ALLOW_STILL_UPLOAD)


class LargeTextForm(forms.Form):
    large_text = forms.TypedChoiceField(choices=[("1", "on"), ("0", "off")], coerce=lambda v: v == "1")
