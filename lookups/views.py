"""Guardian-facing pages. Thin: parse input, call a service, render.

Every lookup URL resolves the lookup through the services, which only ever find the
requesting user's own lookups: anyone else's id answers 404, exactly like a missing one.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from guardians import permissions

from . import selectors, services
from .audit import Actor
from .forms import FacePhotoForm, OtpForm
from .models import LookupRequest

State = LookupRequest.State


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    return redirect("lookups:dashboard")


def _lookup_or_404(request: HttpRequest, lookup_id) -> LookupRequest:
    try:
        return services.lookup_status(actor=Actor.from_request(request), lookup_id=lookup_id)
    except services.LookupNotFound as exc:
        raise Http404 from exc


def _step_url(lookup: LookupRequest) -> str:
    names = {
        State.AWAITING_OTP: "lookups:otp",
        State.AWAITING_FACE: "lookups:face",
        State.CHECKING_FACE: "lookups:wait",
        State.GRANTED: "lookups:results",
    }
    return reverse(names.get(lookup.state, "lookups:ended"), args=[lookup.pk])


@login_required
@never_cache
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "lookups/dashboard.html",
        {
            "elders": selectors.elders_for_dashboard(request.user),
            "recent": selectors.recent_lookups(request.user),
            "is_staff_user": bool(permissions.staff_clinic_ids(request.user)) or request.user.is_superuser,
        },
    )


@login_required
@require_POST
def start(request: HttpRequest, elder_public_id) -> HttpResponse:
    try:
        lookup = services.lookup_start(actor=Actor.from_request(request), elder_public_id=elder_public_id)
    except services.LookupNotFound as exc:
        raise Http404 from exc
    return redirect("lookups:otp", lookup.pk)


def _refusal_message(request: HttpRequest, refusal: services.LookupRefused) -> None:
    text = str(refusal)
    if refusal.retry_at is not None:
        text += " " + _("You can try again after %(time)s.") % {
            "time": refusal.retry_at.astimezone().strftime("%H:%M:%S")
        }
    messages.error(request, text)


@login_required
@never_cache
def otp(request: HttpRequest, lookup_id) -> HttpResponse:
    lookup = _lookup_or_404(request, lookup_id)
    if lookup.state != State.AWAITING_OTP:
        return redirect(_step_url(lookup))
    form = OtpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            lookup = services.lookup_verify_otp(
                actor=Actor.from_request(request), lookup_id=lookup.pk, token=form.cleaned_data["token"]
            )
        except services.LookupRefused as refusal:
            _refusal_message(request, refusal)
            return redirect(_step_url(_lookup_or_404(request, lookup_id)))
        return redirect(_step_url(lookup))
    return render(request, "lookups/otp.html", {"lookup": lookup, "form": form, "step": 1})


@login_required
@never_cache
def face(request: HttpRequest, lookup_id) -> HttpResponse:
    lookup = _lookup_or_404(request, lookup_id)
    if lookup.state != State.AWAITING_FACE:
        return redirect(_step_url(lookup))
    form = FacePhotoForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            upload = form.cleaned_data["photo"]
            try:
                services.lookup_submit_face(
                    actor=Actor.from_request(request), lookup_id=lookup.pk, images=[selectors.read_upload(upload)]
                )
            except services.FaceCheckingUnavailable:
                return render(request, "lookups/unavailable.html", {"lookup": lookup}, status=503)
            except services.LookupRefused as refusal:
                _refusal_message(request, refusal)
                return redirect(_step_url(_lookup_or_404(request, lookup_id)))
            return redirect("lookups:wait", lookup.pk)
        status = 400
    context = {
        "lookup": lookup,
        "form": form,
        "step": 2,
        "last_check": selectors.last_face_check(lookup),
        "retry_at": services.face_retry_not_before(request.user),
    }
    return render(request, "lookups/face.html", context, status=status)


@login_required
@never_cache
def wait(request: HttpRequest, lookup_id) -> HttpResponse:
    lookup = _lookup_or_404(request, lookup_id)
    if lookup.state != State.CHECKING_FACE:
        return redirect(_step_url(lookup))
    return render(request, "lookups/wait.html", {"lookup": lookup, "step": 3})


@login_required
@never_cache
@require_GET
def status(request: HttpRequest, lookup_id) -> JsonResponse:
    lookup = _lookup_or_404(request, lookup_id)
    check = selectors.last_face_check(lookup)
    return JsonResponse(
        {
            "state": lookup.state,
            "label": str(lookup.get_state_display()),
            "done": lookup.state != State.CHECKING_FACE,
            "next": _step_url(lookup),
            "message": selectors.face_check_message(check) if lookup.state != State.CHECKING_FACE else "",
        }
    )


@login_required
@never_cache
def results(request: HttpRequest, lookup_id) -> HttpResponse:
    try:
        view = services.results_view(actor=Actor.from_request(request), lookup_id=lookup_id)
    except services.LookupNotFound as exc:
        raise Http404 from exc
    except services.LookupRefused as refusal:
        _refusal_message(request, refusal)
        return redirect(_step_url(_lookup_or_404(request, lookup_id)))
    return render(request, "lookups/results.html", {"lookup": view.lookup, "results": view.results})


@login_required
@never_cache
def ended(request: HttpRequest, lookup_id) -> HttpResponse:
    lookup = _lookup_or_404(request, lookup_id)
    if lookup.state not in LookupRequest.FINAL_STATES:
        return redirect(_step_url(lookup))
    return render(
        request,
        "lookups/ended.html",
        {
            "lookup": lookup,
            "reason": selectors.end_reason_message(lookup),
            "last_check": selectors.last_face_check(lookup),
        },
    )


@login_required
@require_POST
def cancel(request: HttpRequest, lookup_id) -> HttpResponse:
    try:
        services.lookup_cancel(actor=Actor.from_request(request), lookup_id=lookup_id)
    except services.LookupNotFound as exc:
        raise Http404 from exc
    return redirect("lookups:dashboard")
