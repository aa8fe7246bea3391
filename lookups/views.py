"""Guardian- and elder-facing pages. Thin: parse input, call a service or selector, render.

Every lookup URL resolves the lookup through the services, which only ever find the
requesting user's own lookups: anyone else's id answers 404, exactly like a missing one.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django.views.i18n import set_language

from guardians import permissions
from guardians import services as guardian_services
from guardians.typing import AuthenticatedHttpRequest

from . import challenges, selectors, services
from .audit import Actor
from .fhir.selectors import results_mark_corrections
from .forms import BURST_DURATION_MS, BURST_FRAMES, BURST_MAX_SIDE, FaceBurstForm, FacePhotoForm, LargeTextForm, OtpForm
from .messages import end_reason_message, face_check_message, face_reason_message
from .models import LookupRequest
from .oversight.views import AuditedLoginView
from .session_binding import session_binding

State = LookupRequest.State
LARGE_TEXT_COOKIE = "kinguard_large_text"


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    return redirect("lookups:dashboard")


class LoginView(AuditedLoginView):
    """The audited login, then the user's saved language (if any) becomes the language cookie."""

    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)
        language = getattr(self.request.user, "preferred_language", "")
        if language:
            translation.activate(language)
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                language,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            )
        return response


def _lookup_or_404(request: AuthenticatedHttpRequest, lookup_id) -> LookupRequest:
    try:
        return selectors.lookup_for_page(
            actor=Actor.from_request(request), session_binding=session_binding(request), lookup_id=lookup_id
        )
    except services.LookupNotFound as exc:
        raise Http404 from exc


def _step_url(lookup: LookupRequest) -> str:
    names: dict[str, str] = {
        State.AWAITING_OTP: "lookups:otp",
        State.AWAITING_FACE: "lookups:face",
        State.CHECKING_FACE: "lookups:wait",
        State.GRANTED: "lookups:results",
    }
    return reverse(names.get(lookup.state, "lookups:ended"), args=[lookup.pk])


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.META.get("HTTP_REFERER") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


@login_required
@never_cache
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(
        request,
        "lookups/dashboard.html",
        {
            "elders": selectors.elders_for_dashboard(request.user),
            "recent": selectors.recent_lookups(request.user),
            "is_elder": permissions.is_elder_user(request.user),
            "is_staff_user": permissions.has_staff_workspace(request.user),
        },
    )


@login_required
@require_POST
def start(request: AuthenticatedHttpRequest, elder_public_id) -> HttpResponse:
    try:
        lookup = services.lookup_start(
            actor=Actor.from_request(request), session_binding=session_binding(request), elder_public_id=elder_public_id
        )
    except services.LookupNotFound as exc:
        raise Http404 from exc
    return redirect("lookups:otp", lookup.pk)


def _refusal_text(refusal: services.LookupRefused | challenges.ChallengeRefused) -> str:
    text = str(refusal)
    if refusal.retry_at is not None:
        when = formats.time_format(timezone.localtime(refusal.retry_at), "H:i:s")
        text += " " + _("You can try again after %(time)s.") % {"time": when}
    return text


def _refusal_message(request: HttpRequest, refusal: services.LookupRefused) -> None:
    messages.error(request, _refusal_text(refusal))


@login_required
@never_cache
def otp(request: AuthenticatedHttpRequest, lookup_id) -> HttpResponse:
    lookup = _lookup_or_404(request, lookup_id)
    if lookup.state != State.AWAITING_OTP:
        return redirect(_step_url(lookup))
    form = OtpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            lookup = services.lookup_verify_otp(
                actor=Actor.from_request(request),
                session_binding=session_binding(request),
                lookup_id=lookup.pk,
                token=form.cleaned_data["token"],
            )
        except services.LookupRefused as refusal:
            _refusal_message(request, refusal)
            return redirect(_step_url(_lookup_or_404(request, lookup_id)))
        return redirect(_step_url(lookup))
    return render(request, "lookups/otp.html", {"lookup": lookup, "form": form, "step": 1})


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _face_answer(
    request: AuthenticatedHttpRequest, lookup: LookupRequest, *, error: str = "", status: int = 200
) -> HttpResponse:
    """The camera script gets JSON; the plain upload form (no script) gets redirects."""
    fresh = _lookup_or_404(request, lookup.pk)
    next_url = _step_url(fresh)
    if _wants_json(request):
        answer = {"ok": not error, "error": error, "next": next_url}
        if error and fresh.state == State.AWAITING_FACE:
            # A retake on the same page answers the live challenge (a new one once used).
            try:
                challenge = challenges.challenge_retake(fresh, actor=Actor.from_request(request))
                if challenge is not None:
                    answer["challenge"] = {"nonce": challenge.nonce, "steps": challenges.action_prompts(challenge)}
            except challenges.ChallengeRefused as refusal:
                answer["error"] = f"{error} {refusal}"
        return JsonResponse(answer, status=status)
    if error:
        messages.error(request, error)
    return redirect(next_url)


@login_required
@never_cache
def face(request: AuthenticatedHttpRequest, lookup_id) -> HttpResponse:
    """Face step: the camera burst (``frames``), or one still photo (``photo``) where allowed."""
    lookup = _lookup_or_404(request, lookup_id)
    if lookup.state != State.AWAITING_FACE:
        if _wants_json(request):
            return JsonResponse({"ok": False, "error": _("This step is not available now."), "next": _step_url(lookup)})
        return redirect(_step_url(lookup))
    allow_still = bool(settings.KINGUARD_ALLOW_STILL_UPLOAD)
    photo_form = FacePhotoForm()
    status = 200
    if request.method == "POST":
        images: list[bytes] = []
        error = ""
        if request.FILES.getlist("frames"):
            burst = FaceBurstForm(request.POST, request.FILES)
            if burst.is_valid():
                images = [selectors.read_upload(f) for f in burst.cleaned_data["frames"]]
            else:
                error = " ".join(map(str, burst.errors.get("frames", []))) or _("Please retake it with the camera.")
        elif not allow_still:
            error = face_reason_message("still_not_allowed")
        else:
            photo_form = FacePhotoForm(request.POST, request.FILES)
            if photo_form.is_valid():
                images = [selectors.read_upload(photo_form.cleaned_data["photo"])]
            elif not _wants_json(request):
                status = 400
            else:
                error = _("Please take or choose a photo of your face.")
        if images:
            try:
                # The nonce of the challenge the page showed; the service consumes it once.
                services.lookup_submit_face(
                    actor=Actor.from_request(request),
                    session_binding=session_binding(request),
                    lookup_id=lookup.pk,
                    images=images,
                    challenge_nonce=request.POST.get("challenge", ""),
                )
            except services.FaceCheckingUnavailable:
                if _wants_json(request):
                    return JsonResponse(
                        {"ok": False, "error": _("Face checking is unavailable right now."), "next": ""}, status=503
                    )
                return render(request, "lookups/unavailable.html", {"lookup": lookup}, status=503)
            except (services.LookupRefused, challenges.ChallengeRefused) as refusal:
                return _face_answer(request, lookup, error=_refusal_text(refusal), status=400)
            return _face_answer(request, lookup)
        if error:
            return _face_answer(request, lookup, error=error, status=400)
    challenge, challenge_error = None, ""
    try:  # the server chooses what the person must do; a reload shows the same live prompt
        challenge = challenges.challenge_issue(lookup, actor=Actor.from_request(request))
    except challenges.ChallengeRefused as refusal:
        challenge_error = str(refusal)
    context = {
        "lookup": lookup,
        "challenge": challenge,
        "challenge_prompts": challenges.action_prompts(challenge) if challenge else [],
        "challenge_error": challenge_error,
        "burst_max_side": BURST_MAX_SIDE,
        "form": photo_form,
        "step": 2,
        "allow_still_upload": allow_still,
        "burst_frames": BURST_FRAMES,
        "burst_duration_ms": BURST_DURATION_MS,
        "burst_seconds": formats.number_format(BURST_DURATION_MS / 1000, 1),
        "clinic": selectors.clinic_of_lookup(lookup),
        "last_check": selectors.last_face_check(lookup),
        "retry_at": services.face_retry_not_before(request.user),
    }
    return render(request, "lookups/face.html", context, status=status)


@login_required
@never_cache
def wait(request: AuthenticatedHttpRequest, lookup_id) -> HttpResponse:
    lookup = _lookup_or_404(request, lookup_id)
    if lookup.state != State.CHECKING_FACE:
        return redirect(_step_url(lookup))
    return render(
        request, "lookups/wait.html", {"lookup": lookup, "step": 3, "clinic": selectors.clinic_of_lookup(lookup)}
    )


@login_required
@never_cache
@require_GET
def status(request: AuthenticatedHttpRequest, lookup_id) -> JsonResponse:
    lookup = _lookup_or_404(request, lookup_id)
    check = selectors.last_face_check(lookup)
    done = lookup.state != State.CHECKING_FACE
    return JsonResponse(
        {
            "state": lookup.state,
            "label": str(lookup.get_state_display()),
            "done": done,
            "next": _step_url(lookup),
            "outcome": (check.outcome if check else "") if done else "",
            "message": face_check_message(check) if done else "",
        }
    )


@login_required
@never_cache
def results(request: AuthenticatedHttpRequest, lookup_id) -> HttpResponse:
    try:
        view = services.results_view(
            actor=Actor.from_request(request), session_binding=session_binding(request), lookup_id=lookup_id
        )
    except services.LookupNotFound as exc:
        raise Http404 from exc
    except services.LookupRefused as refusal:
        _refusal_message(request, refusal)
        return redirect(_step_url(_lookup_or_404(request, lookup_id)))
    return render(
        request,
        "lookups/results.html",
        {
            "lookup": view.lookup,
            "results": results_mark_corrections(view.results),
            "step": 3,
            "clinic": selectors.clinic_of_lookup(view.lookup),
        },
    )


@login_required
@never_cache
def ended(request: AuthenticatedHttpRequest, lookup_id) -> HttpResponse:
    lookup = _lookup_or_404(request, lookup_id)
    if lookup.state not in LookupRequest.FINAL_STATES:
        return redirect(_step_url(lookup))
    return render(
        request,
        "lookups/ended.html",
        {
            "lookup": lookup,
            "reason": end_reason_message(lookup),
            "last_check": selectors.last_face_check(lookup),
            "clinic": selectors.clinic_of_lookup(lookup),
        },
    )


@login_required
@require_POST
def cancel(request: AuthenticatedHttpRequest, lookup_id) -> HttpResponse:
    try:
        services.lookup_cancel(
            actor=Actor.from_request(request), session_binding=session_binding(request), lookup_id=lookup_id
        )
    except services.LookupNotFound as exc:
        raise Http404 from exc
    return redirect("lookups:dashboard")


# --- display preferences ------------------------------------------------------------------


@require_POST
def large_text(request: HttpRequest) -> HttpResponse:
    """Elder mode on/off: saved on the account when signed in, in a cookie before sign-in."""
    form = LargeTextForm(request.POST)
    response = HttpResponseRedirect(_safe_next(request, reverse("home")))
    if not form.is_valid():
        return response
    enabled = form.cleaned_data["large_text"]
    if request.user.is_authenticated:
        guardian_services.user_preferences_update(
            actor=Actor.from_request(request), user=request.user, large_text=enabled
        )
    response.set_cookie(LARGE_TEXT_COOKIE, "1" if enabled else "0", max_age=365 * 24 * 3600, samesite="Lax")
    return response


@require_POST
def language(request: HttpRequest) -> HttpResponse:
    """Django's ``set_language`` (cookie + redirect), and the choice saved for a signed-in user."""
    code = request.POST.get("language", "")
    if request.user.is_authenticated and code in dict(settings.LANGUAGES):
        guardian_services.user_preferences_update(
            actor=Actor.from_request(request), user=request.user, preferred_language=code
        )
    return set_language(request)


# --- the elder's own pages ----------------------------------------------------------------


def _elder_or_404(request: AuthenticatedHttpRequest):
    person = selectors.own_person(request.user)
    if person is None:
        raise Http404
    return person


@login_required
@never_cache
def my_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    person = _elder_or_404(request)
    return render(request, "lookups/me.html", {"person": person, "clinic": person.clinic})


@login_required
@never_cache
def looked_me_up(request: AuthenticatedHttpRequest) -> HttpResponse:
    person = _elder_or_404(request)
    rows = selectors.lookup_history_of_elder(person)
    return render(request, "lookups/looked_me_up.html", {"person": person, "rows": rows, "clinic": person.clinic})


@login_required
@never_cache
def my_guardians(request: AuthenticatedHttpRequest) -> HttpResponse:
    person = _elder_or_404(request)
    authorizations = selectors.guardians_of_elder(request.user)
    return render(
        request,
        "lookups/my_guardians.html",
        {
            "person": person,
            "authorizations": authorizations,
            "requested": selectors.removal_requested_ids(authorizations),
            "clinic": person.clinic,
        },
    )


@login_required
@require_POST
def request_removal(request: AuthenticatedHttpRequest, authorization_id: int) -> HttpResponse:
    _elder_or_404(request)
    try:
        recorded = guardian_services.authorization_removal_request(
            actor=Actor.from_request(request), authorization_id=authorization_id
        )
    except guardian_services.NotPermitted as exc:
        raise Http404 from exc
    except guardian_services.IllegalState:
        messages.error(request, _("This authorization has already ended."))
        return redirect("lookups:my_guardians")
    if recorded:
        messages.success(
            request,
            _(
                "Your request was sent to the clinic. To finish, please visit the clinic with your ID card: "
                "the staff will remove this guardian."
            ),
        )
    else:
        messages.info(request, _("You already asked the clinic to remove this guardian."))
    return redirect("lookups:my_guardians")
