"""Admin mixins that complete the audit trail: every admin change and every record view.

``install(site)`` gives the admin site audited sign-ins and wraps every registered
ModelAdmin (ours and third-party ones such as django-otp's) in ``AuditedChangesMixin``,
so no admin add/change/delete escapes the log. The events are written in the admin's own
transaction (Django wraps add/change/delete views in ``atomic``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.admin import ModelAdmin
from django.contrib.admin.utils import unquote
from django_otp.admin import OTPAdminSite

from ..audit import Actor
from . import services

# The mixins are combined with ModelAdmin subclasses; type-check them as one.
_AdminBase: Any = ModelAdmin if TYPE_CHECKING else object


class AuditedChangesMixin(_AdminBase):
    """Mirror Django's admin LogEntry writes into the hash-chained audit log."""

    def log_addition(self, request, obj, message):
        services.admin_change_record(actor=Actor.from_request(request), change="added", obj=obj, message=message)
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        services.admin_change_record(actor=Actor.from_request(request), change="changed", obj=obj, message=message)
        return super().log_change(request, obj, message)

    def log_deletions(self, request, queryset):
        actor = Actor.from_request(request)
        for obj in queryset:
            services.admin_change_record(actor=actor, change="deleted", obj=obj)
        return super().log_deletions(request, queryset)


class AuditedRecordViewMixin(_AdminBase):
    """Audit every staff view of one record's admin page (``record_view_service(actor=, obj)``).

    The event is written before the page is rendered: if it cannot be written, the record
    is not shown.
    """

    def audit_record_view(self, actor: Actor, obj) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, unquote(object_id))
            if obj is not None:
                self.audit_record_view(Actor.from_request(request), obj)
        return response


def audit_login_response(request, response, *, via: str) -> None:
    """Audit the outcome of a POST to a login view from its response."""
    if request.method != "POST":
        return
    if response.status_code in (301, 302, 303) and request.user.is_authenticated:
        services.login_record_success(actor=Actor.from_request(request), via=via)
        return
    form = (getattr(response, "context_data", None) or {}).get("form")
    reasons: list[str] = []
    if form is not None:
        for errors in form.errors.as_data().values():
            reasons += [error.code or "invalid" for error in errors]
    services.login_record_failure(
        actor=Actor.from_request(request),
        username=request.POST.get("username", ""),
        via=via,
        reasons=reasons or ["invalid_login"],
    )


class KinguardAdminSite(OTPAdminSite):
    """OTPAdminSite whose sign-ins (password + OTP) are audited, successful or not."""

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        audit_login_response(request, response, via="admin")
        return response


def install(site) -> None:
    """Make ``site`` a KinguardAdminSite and audit changes on every registered ModelAdmin."""
    if not isinstance(site, KinguardAdminSite):  # config.admin_site's subclass already is
        site.__class__ = KinguardAdminSite
    for model_admin in site._registry.values():
        if not isinstance(model_admin, AuditedChangesMixin):
            base = type(model_admin)
            model_admin.__class__ = type(f"Audited{base.__name__}", (AuditedChangesMixin, base), {})
