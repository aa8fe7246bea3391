"""Account pages for people registered at the desk (``accounts`` namespace, not staff pages)."""

from __future__ import annotations

from django.contrib.auth.views import INTERNAL_RESET_SESSION_TOKEN, PasswordResetConfirmView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse_lazy

from config.client_ip import client_ip
from guardians import services
from lookups.audit import Actor

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
