"""The clinic staff workspace (``/staff/``). Thin: check, parse, call a service, render.

Every page needs a signed-in user whose session was verified with an OTP device
(``staff_view``); anyone else is sent to the staff sign-in. Objects are looked up through
``guardians.selectors`` with querysets from ``guardians.permissions``, so a person, an
authorization or a result outside the staff member's clinics (or outside what their role
may do) answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponseBase
from django.urls import reverse
from django.views.decorators.cache import never_cache

from config.middleware import otp_is_fresh
from guardians import permissions, selectors
from guardians.models import Authorization, Person
from guardians.typing import AuthenticatedHttpRequest

A = permissions.StaffAction
PAGE_SIZE = 50


# Actions that change who may act for whom, or how someone proves who they are, need a
# one-time code presented within KINGUARD_STAFF_REAUTH_SECONDS (step-up re-authentication).
STEP_UP_ACTIONS = frozenset({A.ENROLL, A.MANAGE_AUTHORIZATIONS})


#: A staff page: takes an AuthenticatedHttpRequest (staff_view guarantees it) and its URL arguments.
StaffView = Callable[..., HttpResponseBase]


def staff_view(action: str = A.VIEW) -> Callable[[StaffView], StaffView]:
    """Require an OTP-verified session and a clinic where the user's role allows ``action``.

    Unverified or anonymous: redirect to the staff sign-in. Verified but with no clinic for
    this action (e.g. an auditor on a write page): 403. For STEP_UP_ACTIONS the code must be
    recent, else the page asks for a fresh one first. Object scoping is done by the view.
    """

    def decorator(view: StaffView) -> StaffView:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = request.user
            if not (user.is_authenticated and user.is_verified()):
                return redirect_to_login(request.get_full_path(), reverse("staff:login"))
            if not permissions.staff_clinics(user, action).exists():
                raise PermissionDenied
            if action in STEP_UP_ACTIONS and not otp_is_fresh(request):
                target = request.get_full_path() if request.method == "GET" else request.META.get("HTTP_REFERER", "")
                return redirect_to_login(target or reverse("staff:home"), reverse("staff:reverify"))
            return view(request, *args, **kwargs)

        return never_cache(wrapped)

    return decorator


def _person_or_404(request: AuthenticatedHttpRequest, public_id: uuid.UUID | str, action: str = A.VIEW) -> Person:
    person = selectors.person_for(request.user, public_id, action)
    if person is None:
        raise Http404
    return person


def _authorization_or_404(request: AuthenticatedHttpRequest, pk: int, action: str = A.VIEW) -> Authorization:
    authorization = selectors.authorization_for(request.user, pk, action)
    if authorization is None:
        raise Http404
    return authorization


def _page(request: HttpRequest, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _query(request: HttpRequest) -> str:
    return " ".join(request.GET.get("q", "").split())[:100]


def _param(request: HttpRequest, name: str) -> str:
    """A value from the submitted form, else from the query string (the form posts to its own URL)."""
    return request.POST.get(name) or request.GET.get(name) or ""


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise Http404 from exc
