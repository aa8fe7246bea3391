"""Enrollment at the desk: authenticator (TOTP), backup codes, biometric consent, face."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from guardians import services
from guardians.staff import forms
from guardians.typing import AuthenticatedHttpRequest
from lookups.audit import Actor

from .common import (
    A,
    _person_or_404,
    staff_view,
)

# --- OTP enrollment and backup codes --------------------------------------------------------


def _qr_svg(data: str) -> str:
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=12, border=2)
    return image.to_string(encoding="unicode")


@sensitive_post_parameters()
@staff_view(A.ENROLL)
def otp_enroll(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Enroll the person's authenticator: start (QR code) → confirm with one code → active."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    found = _person_or_404(request, public_id, A.ENROLL)
    if found.user_id is None:
        messages.error(request, _("Create a login account first."))
        return redirect("staff:person", found.public_id)
    actor = Actor.from_request(request)
    form = forms.TotpConfirmForm()
    status = 200
    if request.method == "POST" and request.POST.get("action") == "start":
        services.otp_enrollment_start(actor=actor, person=found)
        return redirect("staff:otp_enroll", found.public_id)
    if request.method == "POST":
        form = forms.TotpConfirmForm(request.POST)
        if form.is_valid():
            try:
                ok = services.otp_enrollment_confirm(
                    actor=actor, person=found, device_id=form.cleaned_data["device"], token=form.cleaned_data["token"]
                )
            except services.IllegalState as exc:
                messages.error(request, str(exc))
                return redirect("staff:otp_enroll", found.public_id)
            if ok:
                messages.success(request, _("The authenticator is active."))
                return redirect("staff:person", found.public_id)
            form.add_error("token", _("That code is not correct. Wait for the next code in the app and try again."))
        status = 400
    device = TOTPDevice.objects.filter(user_id=found.user_id, confirmed=False).order_by("-id").first()
    confirmed = TOTPDevice.objects.filter(user_id=found.user_id, confirmed=True).exists()
    context = {"person": found, "device": device, "confirmed": confirmed, "form": form, "nav": "people"}
    if device is not None:
        context["qr_svg"] = _qr_svg(device.config_url)
        context["secret"] = _b32(device.bin_key)
        form.initial = {"device": device.pk}
    return render(request, "staff/otp_enroll.html", context, status=status)


def _b32(key: bytes) -> str:
    from base64 import b32encode

    text = b32encode(key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


@staff_view(A.ENROLL)
@require_POST
def backup_codes(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Issue new printable backup codes (the old ones stop working)."""
    found = _person_or_404(request, public_id, A.ENROLL)
    if found.user_id is None:
        messages.error(request, _("Create a login account first."))
        return redirect("staff:person", found.public_id)
    codes = services.backup_codes_issue(actor=Actor.from_request(request), person=found)
    return render(request, "staff/backup_codes.html", {"person": found, "codes": codes, "nav": "people"})


# --- face enrollment ----------------------------------------------------------------------


@sensitive_post_parameters()
@staff_view(A.ENROLL)
def face_consent(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Step 1: record the separate biometric consent (the text shown, who agreed)."""
    found = _person_or_404(request, public_id, A.ENROLL)
    form = forms.FaceConsentForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                services.face_consent_record(
                    actor=Actor.from_request(request),
                    person=found,
                    consent_text=data["consent_text"],
                    given_by=data["given_by"],
                    representative_name=data["representative_name"],
                )
            except services.ServiceError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("staff:face_enroll", found.public_id)
        return render(request, "staff/face_consent.html", {"person": found, "form": form, "nav": "people"}, status=400)
    return render(request, "staff/face_consent.html", {"person": found, "form": form, "nav": "people"})


@sensitive_post_parameters()
@staff_view(A.ENROLL)
def face_enroll(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Step 2: capture 1-5 photos (3 recommended), quality-gated; the mean embedding is kept."""
    found = _person_or_404(request, public_id, A.ENROLL)
    consent = services.face_consent_pending(found)
    if consent is None:
        messages.warning(request, _("Record the person's biometric consent first."))
        return redirect("staff:face_consent", found.public_id)
    form = forms.FaceEnrollForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                enrollment = services.face_enroll_with_consent(
                    actor=Actor.from_request(request), person=found, consent_id=consent.pk, samples=form.samples
                )
            except services.ServiceError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(
                    request, _("The face is enrolled from %(n)d photo(s).") % {"n": enrollment.sample_count}
                )
                return redirect("staff:person", found.public_id)
        status = 400
    return render(
        request,
        "staff/face_enroll.html",
        {"person": found, "form": form, "consent": consent, "nav": "people"},
        status=status,
    )


@staff_view(A.ENROLL)
@require_POST
def face_withdraw(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """The person withdrew their biometric consent: the face template is deleted at once."""
    found = _person_or_404(request, public_id, A.ENROLL)
    try:
        deleted = services.face_enrollment_withdraw(
            actor=Actor.from_request(request), person=found, reason=request.POST.get("reason", "")
        )
    except services.ServiceError as exc:
        messages.error(request, str(exc))
    else:
        if deleted:
            messages.success(request, _("The face template is deleted."))
        else:
            messages.info(request, _("No face was enrolled."))
    return redirect("staff:person", found.public_id)
