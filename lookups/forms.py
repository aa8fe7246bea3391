from django import forms
from django.utils.translation import gettext_lazy as _


class OtpForm(forms.Form):
    token = forms.CharField(
        label=_("6-digit code from your authenticator app"),
        min_length=6,
        max_length=8,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "one-time-code", "autofocus": True}),
    )

    def clean_token(self) -> str:
        token = self.cleaned_data["token"].replace(" ", "")
        if not token.isdigit():
            raise forms.ValidationError(_("The code has digits only."))
        return token


class FacePhotoForm(forms.Form):
    photo = forms.FileField(
        label=_("A photo of your face"),
        widget=forms.ClearableFileInput(attrs={"accept": "image/*", "capture": "user"}),
    )
