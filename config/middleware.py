"""Request ids for logs, and NIST AAL2 session limits (30 min idle, 12 h absolute)."""

from __future__ import annotations

import logging
import time
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from .request_context import request_id_var

access_log = logging.getLogger("kinguard.access")


class RequestIdMiddleware:
    """Tag every request (and its log lines) with an id; log one access line without personal data."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if incoming.isalnum() and len(incoming) <= 64 else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            access_log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "user_id": getattr(getattr(request, "user", None), "pk", None),
                },
            )
            return response
        finally:
            request_id_var.reset(token)


SESSION_STARTED = "_kg_session_started"
SESSION_LAST_SEEN = "_kg_last_seen"
SESSION_OTP_AT = "_kg_otp_at"


def start_session_clock(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: a new sign-in starts both session-limit clocks."""
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[SESSION_STARTED] = request.session[SESSION_LAST_SEEN] = now
        if getattr(user, "otp_device", None) is not None:  # signed in with a one-time code
            request.session[SESSION_OTP_AT] = now


def otp_is_fresh(request: HttpRequest) -> bool:
    """True when this session presented a one-time code within KINGUARD_STAFF_REAUTH_SECONDS."""
    at = request.session.get(SESSION_OTP_AT)
    return at is not None and time.time() - at <= settings.KINGUARD_STAFF_REAUTH_SECONDS


def otp_mark_fresh(request: HttpRequest) -> None:
    request.session[SESSION_OTP_AT] = time.time()


class SessionLimitsMiddleware:
    """Sign the user out after KINGUARD_SESSION_IDLE_SECONDS without a request, or
    KINGUARD_SESSION_ABSOLUTE_SECONDS after sign-in, whichever comes first."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            started = request.session.get(SESSION_STARTED)
            last_seen = request.session.get(SESSION_LAST_SEEN, now)
            if started is None:
                request.session[SESSION_STARTED] = started = now
            idle = now - last_seen > settings.KINGUARD_SESSION_IDLE_SECONDS
            too_old = now - started > settings.KINGUARD_SESSION_ABSOLUTE_SECONDS
            if idle or too_old:
                logout(request)
                messages.info(request, _("You were signed out to protect your account. Please sign in again."))
                return redirect_to_login(request.get_full_path())
            # Writing the session costs a query: refresh the idle clock at most once a minute.
            if now - last_seen >= 60 or SESSION_LAST_SEEN not in request.session:
                request.session[SESSION_LAST_SEEN] = now
        return self.get_response(request)


class PermissionsPolicyMiddleware:
    """Only this site may use the camera (the face step); nothing else is allowed."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", settings.KINGUARD_PERMISSIONS_POLICY)
        return response
