"""The guardians' sign-in page, with every success and failure audited."""

from django.contrib.auth import views as auth_views

from ..audit import Actor
from . import services


class AuditedLoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def form_valid(self, form):
        response = super().form_valid(form)  # signs the user in: the actor is now known
        services.login_record_success(actor=Actor.from_request(self.request), via="site")
        return response

    def form_invalid(self, form):
        reasons = [error.code or "invalid" for errors in form.errors.as_data().values() for error in errors]
        services.login_record_failure(
            actor=Actor.from_request(self.request),
            username=self.request.POST.get("username", ""),
            via="site",
            reasons=reasons or ["invalid_login"],
        )
        return super().form_invalid(form)
