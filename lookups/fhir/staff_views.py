"""The desk queue "results waiting for a registration" (staff workspace, issue 15).

Invariants: only OTP-verified staff who may record results at a clinic see that clinic's
waiting results, and never their values or full ID numbers (sender, received, test kind,
masked ID only); another clinic's result is a 404 like a missing one; a discard needs a
typed reason and the retention period to have passed, and is audited (services).
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from guardians import permissions
from guardians.typing import AuthenticatedHttpRequest
from lookups.audit import Actor

from . import selectors, services

ACTION = permissions.StaffAction.RECORD_RESULTS


def _desk(view):
    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        user = request.user
        if not (user.is_authenticated and user.is_verified()):
            return redirect_to_login(request.get_full_path(), reverse("staff:login"))
        if not permissions.staff_clinics(user, ACTION).exists():
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return never_cache(wrapped)


def _render(request: AuthenticatedHttpRequest, status: int = 200) -> HttpResponse:
    clinics = permissions.staff_clinics(request.user, ACTION)
    waiting = list(selectors.pending_for_clinics(clinics.values_list("pk", flat=True))[:200])
    retention = services.pending_retention()
    for pending in waiting:
        # A display value for the template, not a model field.
        setattr(pending, "discard_from", pending.received_at + retention)  # noqa: B010
    return render(
        request,
        "staff/fhir_pending.html",
        {"waiting": waiting, "retention_days": retention.days, "nav": "results"},
        status=status,
    )


@_desk
@require_http_methods(["GET", "HEAD"])
def pending_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _render(request)


@_desk
@require_POST
def pending_discard(request: AuthenticatedHttpRequest, pending_id: int) -> HttpResponse:
    try:
        services.pending_discard(
            actor=Actor.from_request(request), pending_id=pending_id, reason=request.POST.get("reason", "")
        )
    except services.PendingNotFound as exc:
        raise Http404 from exc
    except services.DiscardRefused as refused:
        messages.error(request, str(refused))
        return _render(request, status=400)
    messages.success(request, _("The waiting result was discarded."))
    return redirect("fhir_staff:pending")
