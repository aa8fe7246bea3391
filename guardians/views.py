"""The clinic staff workspace (``/staff/``). Thin: check, parse, call a service, render.

Every page needs a signed-in user whose session was verified with an OTP device
(``staff_view``); anyone else is sent to the staff sign-in. Objects are looked up through
``guardians.selectors`` with querysets from ``guardians.permissions``, so a person, an
authorization or a result outside the staff member's clinics (or outside what their role
may do) answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.views import INTERNAL_RESET_SESSION_TOKEN, PasswordResetConfirmView, redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from config.client_ip import client_ip
from config.middleware import otp_is_fresh, otp_mark_fresh
from lookups import services as lookup_services
from lookups.audit import Actor
from lookups.oversight.services import authorization_view_record, person_view_record

from . import forms, id_numbers, permissions, selectors, services
from .models import Authorization

A = permissions.StaffAction
PAGE_SIZE = 50


# Actions that change who may act for whom, or how someone proves who they are, need a
# one-time code presented within KINGUARD_STAFF_REAUTH_SECONDS (step-up re-authentication).
STEP_UP_ACTIONS = frozenset({A.ENROLL, A.MANAGE_AUTHORIZATIONS})


def staff_view(action: str = A.VIEW):
    """Require an OTP-verified session and a clinic where the user's role allows ``action``.

    Unverified or anonymous: redirect to the staff sign-in. Verified but with no clinic for
    this action (e.g. an auditor on a write page): 403. For STEP_UP_ACTIONS the code must be
    recent, else the page asks for a fresh one first. Object scoping is done by the view.
    """

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
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


def _person_or_404(request: HttpRequest, public_id, action: str = A.VIEW):
    person = selectors.person_for(request.user, public_id, action)
    if person is None:
        raise Http404
    return person


def _authorization_or_404(request: HttpRequest, pk: int, action: str = A.VIEW) -> Authorization:
    authorization = selectors.authorization_for(request.user, pk, action)
    if authorization is None:
        raise Http404
    return authorization


def _page(request: HttpRequest, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _query(request: HttpRequest) -> str:
    return " ".join(request.GET.get("q", "").split())[:100]


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


# --- home and people ----------------------------------------------------------------------


@staff_view()
def home(request: HttpRequest) -> HttpResponse:
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
def people(request: HttpRequest) -> HttpResponse:
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


def _register(request: HttpRequest, form_class, *, is_guardian: bool) -> HttpResponse:
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
def register_elder(request: HttpRequest) -> HttpResponse:
    return _register(request, forms.ElderRegisterForm, is_guardian=False)


@sensitive_post_parameters("id_number", "birth_date")
@staff_view(A.REGISTER)
def register_guardian(request: HttpRequest) -> HttpResponse:
    return _register(request, forms.GuardianRegisterForm, is_guardian=True)


@staff_view()
def person(request: HttpRequest, public_id) -> HttpResponse:
    """The person's record. Opening it is audited (every staff view of a record is)."""
    found = _person_or_404(request, public_id)
    person_view_record(actor=Actor.from_request(request), person=found)
    allowed = permissions.staff_actions_at(request.user, found.clinic_id)
    return render(
        request,
        "staff/person.html",
        {
            "p": selectors.person_page(found),
            "person": found,
            "can_register": A.REGISTER in allowed,
            "can_enroll": A.ENROLL in allowed,
            "can_authorize": A.MANAGE_AUTHORIZATIONS in allowed,
            "can_record": A.RECORD_RESULTS in allowed,
            "can_photo": A.VIEW_SAMPLING_PHOTO in allowed,
            "nav": "people",
        },
    )


def _show_password_link(request: HttpRequest, found, *, first: bool = False) -> HttpResponse:
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
def password_link(request: HttpRequest, public_id) -> HttpResponse:
    """Issue a one-time set-password link for the person's login, shown for printing or SMS."""
    found = _person_or_404(request, public_id, A.REGISTER)
    if found.user_id is None:
        messages.error(request, _("This person has no login account."))
        return redirect("staff:person", found.public_id)
    return _show_password_link(request, found)


@staff_view(A.REGISTER)
@require_POST
def account_create(request: HttpRequest, public_id) -> HttpResponse:
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
        messages.error(request, " ".join(form.errors["username"]))
    return redirect("staff:person", found.public_id)


# --- OTP enrollment and backup codes --------------------------------------------------------


def _qr_svg(data: str) -> str:
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=12, border=2)
    return image.to_string(encoding="unicode")


@sensitive_post_parameters()
@staff_view(A.ENROLL)
def otp_enroll(request: HttpRequest, public_id) -> HttpResponse:
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
def backup_codes(request: HttpRequest, public_id) -> HttpResponse:
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
def face_consent(request: HttpRequest, public_id) -> HttpResponse:
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
def face_enroll(request: HttpRequest, public_id) -> HttpResponse:
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
def face_withdraw(request: HttpRequest, public_id) -> HttpResponse:
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


# --- authorizations -----------------------------------------------------------------------


@staff_view()
def authorizations(request: HttpRequest) -> HttpResponse:
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
def authorization_new(request: HttpRequest) -> HttpResponse:
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
    context = {"elder": elder, "guardian": guardian, "nav": "authorizations"}
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


def _param(request: HttpRequest, name: str) -> str:
    """A value from the submitted form, else from the query string (the form posts to its own URL)."""
    return request.POST.get(name) or request.GET.get(name) or ""


def _uuid_or_404(value: str):
    import uuid

    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise Http404 from exc


def _authorization_page(request: HttpRequest, authorization: Authorization, status: int = 200, **forms_):
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
            prefix="renew", initial={"valid_until": renew_initial + timezone.timedelta(days=365)}
        ),
        "nav": "authorizations",
    }
    return render(request, "staff/authorization.html", context, status=status)


@staff_view()
def authorization(request: HttpRequest, pk: int) -> HttpResponse:
    found = _authorization_or_404(request, pk)
    authorization_view_record(actor=Actor.from_request(request), authorization=found)
    return _authorization_page(request, found)


@staff_view(A.MANAGE_AUTHORIZATIONS)
@require_POST
def authorization_approve(request: HttpRequest, pk: int) -> HttpResponse:
    found = _authorization_or_404(request, pk, A.MANAGE_AUTHORIZATIONS)
    try:
        services.authorization_approve(actor=Actor.from_request(request), authorization_id=found.pk)
    except services.ServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Approved: the authorization is active."))
    return redirect("staff:authorization", found.pk)


def _end(request: HttpRequest, pk: int, *, prefix: str, service, done: str) -> HttpResponse:
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
def authorization_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    return _end(request, pk, prefix="revoke", service=services.authorization_revoke, done=_("Revoked."))


@staff_view(A.MANAGE_AUTHORIZATIONS)
@require_POST
def authorization_suspend(request: HttpRequest, pk: int) -> HttpResponse:
    return _end(request, pk, prefix="suspend", service=services.authorization_suspend, done=_("Suspended."))


@staff_view(A.MANAGE_AUTHORIZATIONS)
@require_POST
def authorization_renew(request: HttpRequest, pk: int) -> HttpResponse:
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


# --- results ------------------------------------------------------------------------------


@staff_view()
def results(request: HttpRequest) -> HttpResponse:
    query = _query(request)
    return render(
        request,
        "staff/results.html",
        {
            "page": _page(request, selectors.results_list(request.user, query=query)),
            "q": query,
            "can_record": permissions.staff_clinics(request.user, A.RECORD_RESULTS).exists(),
            "nav": "results",
        },
    )


@staff_view(A.RECORD_RESULTS)
def result_new(request: HttpRequest) -> HttpResponse:
    elder = selectors.person_for(request.user, _uuid_or_404(_param(request, "elder")), A.RECORD_RESULTS)
    if elder is None or not elder.is_elder:
        raise Http404
    form = forms.ResultForm(
        request.POST or None, request.FILES or None, initial={"elder": elder.public_id}, user=request.user
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                lookup_services.result_record(
                    actor=Actor.from_request(request),
                    elder=data["elder"],
                    kind=data["kind"],
                    sampled_at=data["sampled_at"],
                    site=data["site"],
                    lab=data["lab"],
                    result=data["result"],
                    reported_at=data["reported_at"],
                    sampling_photo=data["sampling_photo"],
                )
            except lookup_services.LookupRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("The result is recorded."))
                return redirect("staff:person", elder.public_id)
        status = 400
    return render(request, "staff/result_form.html", {"form": form, "elder": elder, "nav": "results"}, status=status)


@staff_view(A.RECORD_RESULTS)
def results_import(request: HttpRequest) -> HttpResponse:
    """CSV import of a lab export: validated completely, then all rows or none."""
    form = forms.ResultsImportForm(request.POST or None, request.FILES or None, user=request.user)
    context = {
        "form": form,
        "columns": lookup_services.RESULTS_CSV_COLUMNS,
        "max_rows": lookup_services.RESULTS_CSV_MAX_ROWS,
        "max_mb": lookup_services.RESULTS_CSV_MAX_BYTES // (1024 * 1024),
        "nav": "results",
    }
    if request.method == "POST":
        if form.is_valid():
            upload = form.cleaned_data["file"]
            data = upload.read(lookup_services.RESULTS_CSV_MAX_BYTES + 1)
            try:
                created = lookup_services.results_import_csv(
                    actor=Actor.from_request(request), clinic=form.cleaned_data["clinic"], data=data
                )
            except lookup_services.ResultsImportRejected as exc:
                context.update(
                    {"rejected": str(exc), "errors": exc.errors[:100], "more": max(0, len(exc.errors) - 100)}
                )
                return render(request, "staff/results_import.html", context, status=400)
            messages.success(request, _("Imported %(n)d results.") % {"n": len(created)})
            return redirect("staff:results")
        return render(request, "staff/results_import.html", context, status=400)
    return render(request, "staff/results_import.html", context)


@staff_view(A.VIEW_SAMPLING_PHOTO)
def result_photo(request: HttpRequest, pk: int) -> HttpResponse:
    """The sampling photo, staff only: a typed reason first (audited), then streamed privately."""
    result = selectors.result_for(request.user, pk, A.VIEW_SAMPLING_PHOTO)
    if result is None or not result.sampling_photo:
        raise Http404
    form = forms.PhotoReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            handle, content_type = lookup_services.result_sampling_photo_open(
                actor=Actor.from_request(request), result_id=result.pk, reason=form.cleaned_data["reason"]
            )
        except lookup_services.LookupNotFound as exc:
            raise Http404 from exc
        except lookup_services.LookupRefused as exc:
            form.add_error("reason", str(exc))
        else:
            response = FileResponse(handle, content_type=content_type)
            response["Content-Disposition"] = "inline"
            response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'"
            return response
    status = 400 if request.method == "POST" else 200
    return render(request, "staff/result_photo.html", {"result": result, "form": form, "nav": "results"}, status=status)


# --- the guardian's one-time set-password link (not a staff page) --------------------------


class SetPasswordView(PasswordResetConfirmView):
    """``/accounts/set-password/<uid>/<token>/``: the owner of a new account chooses a password.

    Django's token view (token moved out of the URL into the session before the form is
    shown); the password is then set through ``services.account_password_set`` (audited).
    """

    template_name = "accounts/set_password.html"
    success_url = reverse_lazy("accounts:set_password_done")
    post_reset_login = False

    def form_valid(self, form):
        user = form.user
        meta = self.request.META
        actor = Actor(
            user=user,
            label=f"{user.get_username()} (set-password link)",
            ip=client_ip(self.request),
            user_agent=meta.get("HTTP_USER_AGENT", "")[:300],
        )
        services.account_password_set(actor=actor, user=user, password=form.cleaned_data["new_password1"])
        del self.request.session[INTERNAL_RESET_SESSION_TOKEN]
        return HttpResponseRedirect(self.get_success_url())


def set_password_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/set_password_done.html")
