"""Home, the people list, registration, a person's record, login accounts."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from guardians import id_numbers, permissions, selectors, services
from guardians.staff import forms
from guardians.typing import AuthenticatedHttpRequest
from lookups.audit import Actor
from lookups.oversight.services import person_view_record

from .common import (
    A,
    _page,
    _person_or_404,
    _query,
    staff_view,
)

# --- home and people ----------------------------------------------------------------------


@staff_view()
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    return render(
        request,
        "staff/home.html",
        {
            "counts": selectors.authorization_counts(user),
            "clinics": list(permissions.staff_clinics(user).order_by("name")),
            "can_register": permissions.staff_clinics(user, A.REGISTER).exists(),
            "expiring_days": selectors.EXPIRING_DAYS,
            "nav": "home",
        },
    )


@staff_view()
def people(request: AuthenticatedHttpRequest) -> HttpResponse:
    role = request.GET.get("role", "")
    query = _query(request)
    return render(
        request,
        "staff/people.html",
        {
            "page": _page(request, selectors.people_list(request.user, query=query, role=role)),
            "q": query,
            "role": role if role in ("elder", "guardian") else "",
            "nav": "people",
        },
    )


def _register(request: AuthenticatedHttpRequest, form_class, *, is_guardian: bool) -> HttpResponse:
    form = form_class(request.POST or None, user=request.user)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                person = services.person_register_in_person(
                    actor=Actor.from_request(request),
                    clinic=data["clinic"],
                    full_name=data["full_name"],
                    id_number=data["id_number"],
                    birth_date=data["birth_date"],
                    document_type=data["document_type"],
                    document_note=data["document_note"],
                    is_elder=not is_guardian or data.get("also_elder", False),
                    is_guardian=is_guardian,
                    phone=data["phone"],
                    notify_email=data["notify_email"],
                    username=data.get("username", ""),
                )
            except services.DuplicatePerson as exc:  # registered concurrently since validation
                form.duplicate = exc.existing
                form.duplicate_visible = permissions.staff_can(request.user, A.VIEW, exc.existing.clinic_id)
                form.add_error("id_number", str(exc))
            except (services.ServiceError, id_numbers.InvalidIdNumber) as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("%(name)s is registered.") % {"name": person.full_name})
                if is_guardian:
                    return _show_password_link(request, person, first=True)
                return redirect("staff:person", person.public_id)
        status = 400
    return render(
        request,
        "staff/register_person.html",
        {"form": form, "is_guardian": is_guardian, "nav": "people"},
        status=status,
    )


@sensitive_post_parameters("id_number", "birth_date")
@staff_view(A.REGISTER)
def register_elder(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _register(request, forms.ElderRegisterForm, is_guardian=False)


@sensitive_post_parameters("id_number", "birth_date")
@staff_view(A.REGISTER)
def register_guardian(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _register(request, forms.GuardianRegisterForm, is_guardian=True)


@staff_view()
def person(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """The person's record. Opening it is audited (every staff view of a record is).

    What the page offers is asked in the template (``{% staff_actions %}``, the one rule)."""
    found = _person_or_404(request, public_id)
    person_view_record(actor=Actor.from_request(request), person=found)
    return render(
        request,
        "staff/person.html",
        {
            "p": selectors.person_page(found),
            "person": found,
            "nav": "people",
        },
    )


def _show_password_link(request: AuthenticatedHttpRequest, found, *, first: bool = False) -> HttpResponse:
    path = services.set_password_link_issue(actor=Actor.from_request(request), person=found)
    return render(
        request,
        "staff/password_link.html",
        {
            "person": found,
            "link": request.build_absolute_uri(path),
            "valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
            "first": first,
            "nav": "people",
        },
    )


@staff_view(A.REGISTER)
@require_POST
def password_link(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Issue a one-time set-password link for the person's login, shown for printing or SMS."""
    found = _person_or_404(request, public_id, A.REGISTER)
    if found.user_id is None:
        messages.error(request, _("This person has no login account."))
        return redirect("staff:person", found.public_id)
    return _show_password_link(request, found)


@staff_view(A.REGISTER)
@require_POST
def account_create(request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
    """Create a login for a registered person (e.g. an elder who looks up their own results)."""
    found = _person_or_404(request, public_id, A.REGISTER)
    form = forms.AccountCreateForm(request.POST)
    if form.is_valid():
        try:
            services.person_create_login(
                actor=Actor.from_request(request), person=found, username=form.cleaned_data["username"], password=None
            )
        except services.ServiceError as exc:
            messages.error(request, str(exc))
        else:
            found.refresh_from_db()
            return _show_password_link(request, found, first=True)
    else:
        messages.error(request, " ".join(map(str, form.errors["username"])))
    return redirect("staff:person", found.public_id)
