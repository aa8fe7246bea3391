"""Error pages in the Kinguard layout and the visitor's language: 404, 403, CSRF failure, 500.

A guardian's designed refusal (an elder they may not act for) is a 404, so this page is part of
the product: it says what to do next and, where the visitor's clinic is known, its phone number.
404/403/CSRF pages render the normal layout (language switch, sign-out). The 500 page renders
a standalone template with no database access and no request-dependent tags, because the
database may be what failed.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader

logger = logging.getLogger(__name__)


def visitor_clinic(request: HttpRequest):
    """The clinic of the signed-in visitor (their person record, else their staff membership)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    try:
        person = getattr(user, "person", None)
        if person is not None and person.clinic_id:
            return person.clinic
        membership = user.memberships.select_related("clinic").first()
        return membership.clinic if membership else None
    except Exception:
        logger.warning("error page: clinic of visitor unknown", exc_info=True)
        return None


def _page(request: HttpRequest, template: str, status: int) -> HttpResponse:
    return render(request, template, {"clinic": visitor_clinic(request)}, status=status)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, "errors/404.html", 404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _page(request, "errors/403.html", 403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return _page(request, "errors/csrf.html", 403)


def server_error(request: HttpRequest) -> HttpResponse:
    return HttpResponse(loader.get_template("errors/500.html").render({}), status=500)
