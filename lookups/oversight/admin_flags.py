"""The auditors' admin for anomaly flags and notices: scoped to the auditor's clinics, changed
only through the workflow services (``lookups.oversight.admin`` registers the audit log).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from guardians import permissions

from ..audit import Actor
from ..models import AnomalyFlag, Notice
from . import anomalies
from .admin_filters import AnomalyClinicFilter

# --- anomaly flags ------------------------------------------------------------------------


def _column(field: str, title):
    """A list column for a model field with a translated title (the fields have no verbose_name)."""

    @admin.display(description=title, ordering=field)
    def column(self, obj):
        display = getattr(obj, f"get_{field}_display", None)
        return display() if display else getattr(obj, field)

    column.__name__ = f"{field}_col"
    return column


class AuditScopedAdmin(admin.ModelAdmin):
    """For auditors and managers, limited to their clinics; nothing is added or deleted here."""

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        scope = permissions.audit_scope_q(request.user)
        return queryset if scope is None else queryset.filter(scope)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return permissions.can_view_audit(request.user)

    def has_module_permission(self, request) -> bool:
        return permissions.can_view_audit(request.user)


@admin.register(AnomalyFlag)
class AnomalyFlagAdmin(AuditScopedAdmin):
    list_display = (
        "created_at_col",
        "rule_col",
        "key_col",
        "count_col",
        "clinic_col",
        "status_col",
        "acknowledged_by_col",
        "resolved_by_col",
    )
    list_display_links = ("created_at_col",)
    created_at_col = _column("created_at", gettext_lazy("Created"))
    rule_col = _column("rule", gettext_lazy("Rule"))
    key_col = _column("key", gettext_lazy("What it is about"))
    count_col = _column("count", gettext_lazy("Count"))
    clinic_col = _column("clinic", gettext_lazy("Clinic"))
    status_col = _column("status", gettext_lazy("Status"))
    acknowledged_by_col = _column("acknowledged_by", gettext_lazy("Acknowledged by"))
    resolved_by_col = _column("resolved_by", gettext_lazy("Resolved by"))
    list_filter = ("status", "rule", AnomalyClinicFilter)
    list_select_related = ("clinic", "acknowledged_by", "resolved_by")
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-created_at",)
    change_form_template = "admin/oversight/anomalyflag_change_form.html"
    actions = ["acknowledge_selected"]
    # The change form shows translated titles and choice labels (the model fields have no
    # verbose_name, and changing one would need a migration): each row is a titled column.
    window_start_col = _column("window_start", gettext_lazy("Window start"))
    window_end_col = _column("window_end", gettext_lazy("Window end"))
    account_col = _column("account", gettext_lazy("Account"))
    details_col = _column("details", gettext_lazy("Evidence"))
    last_seen_at_col = _column("last_seen_at", gettext_lazy("Last seen"))
    acknowledged_at_col = _column("acknowledged_at", gettext_lazy("Acknowledged at"))
    resolved_at_col = _column("resolved_at", gettext_lazy("Resolved at"))
    resolution_note_col = _column("resolution_note", gettext_lazy("Resolution note"))
    readonly_fields = (
        "rule_col",
        "key_col",
        "status_col",
        "count_col",
        "window_start_col",
        "window_end_col",
        "clinic_col",
        "account_col",
        "details_col",
        "created_at_col",
        "last_seen_at_col",
        "acknowledged_by_col",
        "acknowledged_at_col",
        "resolved_by_col",
        "resolved_at_col",
        "resolution_note_col",
    )
    fields = readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is None:
            return permissions.can_view_audit(request.user)
        return obj.status != AnomalyFlag.Status.RESOLVED and permissions.can_handle_anomalies(
            request.user, obj.clinic_id
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """POST with _acknowledge or _resolve (and a note) calls the workflow services."""
        if request.method == "POST" and ("_acknowledge" in request.POST or "_resolve" in request.POST):
            flag = self.get_object(request, object_id)
            if flag is None:
                raise Http404
            note = request.POST.get("note", "")
            try:
                if "_resolve" in request.POST:
                    anomalies.anomaly_resolve(actor=Actor.from_request(request), flag_id=flag.pk, note=note)
                    messages.success(request, _("%(flag)s: resolved.") % {"flag": flag})
                else:
                    anomalies.anomaly_acknowledge(actor=Actor.from_request(request), flag_id=flag.pk, note=note)
                    messages.success(request, _("%(flag)s: acknowledged.") % {"flag": flag})
            except anomalies.AnomalyError as exc:
                messages.error(request, str(exc))
                return redirect(reverse("admin:lookups_anomalyflag_change", args=[flag.pk]))
            return redirect(reverse("admin:lookups_anomalyflag_changelist"))
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        """Nothing is saved from the form: flags change only through the workflow services."""

    def save_related(self, request, form, formsets, change):
        pass

    @admin.action(description=gettext_lazy("Acknowledge selected flags"))
    def acknowledge_selected(self, request, queryset):
        for flag in queryset:
            try:
                anomalies.anomaly_acknowledge(actor=Actor.from_request(request), flag_id=flag.pk)
            except anomalies.AnomalyError as exc:
                self.message_user(request, f"{flag}: {exc}", messages.ERROR)
            else:
                self.message_user(request, _("%(flag)s: acknowledged.") % {"flag": flag}, messages.SUCCESS)


# --- notices ------------------------------------------------------------------------------


@admin.register(Notice)
class NoticeAdmin(AuditScopedAdmin):
    list_display = (
        "created_at_col",
        "kind_col",
        "person_col",
        "status_col",
        "attempts_col",
        "email_sent_at_col",
        "sms_sent_at_col",
    )
    list_display_links = ("created_at_col",)
    created_at_col = _column("created_at", gettext_lazy("Created"))
    kind_col = _column("kind", gettext_lazy("Kind"))
    person_col = _column("person", gettext_lazy("Person"))
    status_col = _column("status", gettext_lazy("Status"))
    attempts_col = _column("attempts", gettext_lazy("Attempts"))
    email_sent_at_col = _column("email_sent_at", gettext_lazy("E-mail sent"))
    sms_sent_at_col = _column("sms_sent_at", gettext_lazy("SMS sent"))
    list_filter = ("status", "kind")
    list_select_related = ("person",)
    show_facets = admin.ShowFacets.NEVER
    about_col = _column("object_key", gettext_lazy("About"))
    clinic_col = _column("clinic", gettext_lazy("Clinic"))
    email_to_col = _column("email_to", gettext_lazy("E-mail to"))
    phone_to_col = _column("phone_to", gettext_lazy("Phone to"))
    sms_given_up_at_col = _column("sms_given_up_at", gettext_lazy("SMS given up"))
    sent_at_col = _column("sent_at", gettext_lazy("Sent at"))
    last_error_col = _column("last_error", gettext_lazy("Last error"))
    # The view form: translated titles and labels, no raw context.
    readonly_fields = (
        "kind_col",
        "about_col",
        "person_col",
        "clinic_col",
        "status_col",
        "attempts_col",
        "email_to_col",
        "phone_to_col",
        "email_sent_at_col",
        "sms_sent_at_col",
        "sms_given_up_at_col",
        "sent_at_col",
        "last_error_col",
        "created_at_col",
    )
    fields = readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False
