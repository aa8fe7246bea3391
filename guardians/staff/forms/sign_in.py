"""The staff sign-in (also the admin's), and the step-up code form."""

from __future__ import annotations

import secrets

from django import forms
from django.contrib.auth import authenticate, user_login_failed
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _
from django_otp.forms import otp_verification_failed
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from guardians import permissions
from guardians.models import User

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
        if not reason and user is not None and self.require_is_staff and not user.is_staff:
            reason = "not_staff"
        if reason or user is None:  # no user always has a reason (invalid_login)
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
