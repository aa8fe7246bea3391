"""Authorizations: list, register (pick elder and guardian, then terms), approve, end, renew."""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from guardians import permissions, selectors, services
from guardians.models import Authorization
from guardians.staff import forms
from guardians.typing import AuthenticatedHttpRequest
from lookups.audit import Actor
from lookups.oversight.services import authorization_view_record

from .common import (
    A,
    _authorization_or_404,
    _page,
    _param,
    _query,
    _uuid_or_404,
    staff_view,
)

# --- authorizations -----------------------------------------------------------------------


@staff_view()
def authorizations(request: AuthenticatedHttpRequest) -> HttpResponse:
    view = request.GET.get("view", "pending")
    if view not in selectors.AUTHORIZATION_VIEWS:
        view = "pending"
    query = _query(request)
    return render(
        request,
        "staff/authorizations.html",
        {
            "page": _page(request, selectors.authorizations_list(request.user, view=view, query=query)),
            "view": view,
            "views": selectors.AUTHORIZATION_VIEWS,
            "q": query,
            "nav": "authorizations",
        },
    )


@staff_view(A.MANAGE_AUTHORIZATIONS)
def authorization_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Pick the elder and the guardian (search by name, same clinic), then the terms."""
    elder = guardian = None
    if _param(request, "elder"):
        elder = selectors.person_for(request.user, _uuid_or_404(_param(request, "elder")), A.MANAGE_AUTHORIZATIONS)
        if elder is None or not elder.is_elder:
            raise Http404
    if _param(request, "guardian"):
        guardian = selectors.person_for(
            request.user, _uuid_or_404(_param(request, "guardian")), A.MANAGE_AUTHORIZATIONS
        )
        if guardian is None or not guardian.is_guardian:
            raise Http404
    context: dict[str, object] = {"elder": elder, "guardian": guardian, "nav": "authorizations"}
    if elder is None or guardian is None:
        query = _query(request)
        choices = (
            selectors.guardian_choices(request.user, elder=elder, query=query)
            if elder is not None
            else selectors.elder_choices(request.user, guardian=guardian, query=query)
        )
        context.update({"picking": "guardian" if elder is not None else "elder", "q": query})
        context["page"] = Paginator(choices, 20).get_page(request.GET.get("page"))
        return render(request, "staff/authorization_pick.html", context)
    actor = Actor.from_request(request)
    initial = {"elder": elder.public_id, "guardian": guardian.public_id}
    form = forms.AuthorizationForm(
        request.POST if request.method == "POST" else None, initial=initial, user=request.user, actor=actor
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                created = services.authorization_create(
                    actor=actor,
                    guardian=data["guardian"],
                    elder=data["elder"],
                    relationship=data["relationship"],
                    scope=data["scope"],
                    consent_basis=data["consent_basis"],
                    consent_reference=data["consent_reference"],
                    valid_until=forms.end_of_day_after(data["valid_until"]),
                )
            except services.ServiceError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Registered. A second staff member must now approve it."))
                return redirect("staff:authorization", created.pk)
        status = 400
    context["form"] = form
    return render(request, "staff/authorization_new.html", context, status=status)


def _authorization_page(request: AuthenticatedHttpRequest, authorization: Authorization, status: int = 200, **forms_):
    user = request.user
    can_manage = permissions.staff_can(user, A.MANAGE_AUTHORIZATIONS, authorization.clinic_id)
    S = Authorization.Status
    renew_initial = max(timezone.localdate(), timezone.localdate(authorization.valid_until))
    context = {
        "a": authorization,
        "can_manage": can_manage,
        "can_approve": can_manage and authorization.status == S.PENDING,
        "own_registration": authorization.registered_by_id == user.pk,
        "can_revoke": can_manage and authorization.status in (S.PENDING, S.ACTIVE, S.SUSPENDED),
        "can_suspend": can_manage and authorization.status == S.ACTIVE,
        "can_renew": can_manage and authorization.status in (S.ACTIVE, S.SUSPENDED, S.EXPIRED),
        "is_active": authorization.is_active_at(timezone.now()),
        "revoke_form": forms_.get("revoke_form") or forms.AuthorizationEndForm(prefix="revoke"),
        "suspend_form": forms_.get("suspend_form") or forms.AuthorizationEndForm(prefix="suspend"),
        "renew_form": forms_.get("renew_form")
        or forms.AuthorizationRenewForm(
            prefix="renew", initial={"valid_until": renew_initial + dt.timedelta(days=365)}
        ),
        "nav": "authorizations",
    }
    return render(request, "staff/authorization.html", context, status=status)


@staff_view()
def authorization(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    found = _authorization_or_404(request, pk)
    authorization_view_record(actor=Actor.from_request(request), authorization=found)
    return _authorization_page(request, found)


@staff_view(A.MANAGE_AUTHORIZATIONS)
@require_POST
def authorization_approve(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    found = _authorization_or_404(request, pk, A.MANAGE_AUTHORIZATIONS)
    try:
        services.authorization_approve(actor=Actor.from_request(request), authorization_id=found.pk)
    except services.ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Approved: the authorization is active."))
    return redirect("staff:authorization", found.pk)


def _end(request: AuthenticatedHttpRequest, pk: int, *, prefix: str, service, done: str) -> HttpResponse:
    found = _authorization_or_404(request, pk, A.MANAGE_AUTHORIZATIONS)
    form = forms.AuthorizationEndForm(request.POST, prefix=prefix)
    if form.is_valid():
        try:
            service(
                actor=Actor.from_request(request),
                authorization_id=found.pk,
                reason=form.cleaned_data["reason"],
                requested_by=form.cleaned_data["requested_by"],
            )
        except services.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, done)
            return redirect("staff:authorization", found.pk)
    return _authorization_page(request, found, status=400, **{f"{prefix}_form": form})


@staff_view(A.MANAGE_AUTHORIZATIONS)
@require_POST
def authorization_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _end(request, pk, prefix="revoke", service=services.authorization_revoke, done=_("Revoked."))


@staff_view(A.MANAGE_AUTHORIZATIONS)
@require_POST
def authorization_suspend(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    return _end(request, pk, prefix="suspend", service=services.authorization_suspend, done=_("Suspended."))


@staff_view(A.MANAGE_AUTHORIZATIONS)
@require_POST
def authorization_renew(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    found = _authorization_or_404(request, pk, A.MANAGE_AUTHORIZATIONS)
    form = forms.AuthorizationRenewForm(request.POST, prefix="renew")
    if form.is_valid():
        try:
            services.authorization_renew(
                actor=Actor.from_request(request),
                authorization_id=found.pk,
                valid_until=forms.end_of_day_after(form.cleaned_data["valid_until"]),
            )
        except services.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Renewed."))
            return redirect("staff:authorization", found.pk)
    return _authorization_page(request, found, status=400, renew_form=form)
