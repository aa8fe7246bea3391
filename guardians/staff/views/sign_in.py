"""Staff sign-in, step-up re-verification and sign-out."""

from __future__ import annotations

from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from config.middleware import otp_mark_fresh
from guardians import services
from guardians.staff import forms
from lookups.audit import Actor

# --- sign-in ------------------------------------------------------------------------------


@sensitive_post_parameters("password", "otp_token")
@csrf_protect
@never_cache
def login(request: HttpRequest) -> HttpResponse:
    """Password and authenticator code; the session is OTP-verified on success."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = ""
    form = forms.StaffLoginForm(request, data=request.POST or None)
    status = 200
    if request.method == "POST":
        username = request.POST.get("username", "")
        if form.is_valid():
            auth_login(request, form.get_user())  # django-otp stores the verified device in the session
            services.staff_sign_in_record(actor=Actor.from_request(request), username=username, ok=True)
            return redirect(next_url or "staff:home")
        codes = [e.code or "invalid" for e in form.non_field_errors().as_data()] if form.non_field_errors() else []
        services.staff_sign_in_record(
            actor=Actor.from_request(request), username=username, ok=False, reason=(codes or ["invalid_form"])[0]
        )
        status = 400
    return render(request, "staff/login.html", {"form": form, "next": next_url}, status=status)


@sensitive_post_parameters("otp_token")
@never_cache
def reverify(request: HttpRequest) -> HttpResponse:
    """Ask a signed-in staff member for a fresh one-time code before a sensitive change."""
    if not (request.user.is_authenticated and request.user.is_verified()):
        return redirect_to_login(request.get_full_path(), reverse("staff:login"))
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = ""
    form = forms.ReverifyForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid() and services.staff_otp_reverify(
            actor=Actor.from_request(request), user=request.user, token=form.cleaned_data["otp_token"]
        ):
            otp_mark_fresh(request)
            return redirect(next_url or "staff:home")
        if form.is_valid():
            form.add_error("otp_token", _("That code is not correct. Check your authenticator app and try again."))
        status = 400
    return render(request, "staff/reverify.html", {"form": form, "next": next_url}, status=status)


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    auth_logout(request)
    return redirect("staff:login")
