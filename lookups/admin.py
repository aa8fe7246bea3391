"""Admin for results (recorded through services) and read-only views of lookups and audit."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from guardians import permissions

from . import services
from .audit import Actor
from .models import FaceCheck, LookupRequest, TestResult
from .oversight.admin_mixins import AuditedRecordViewMixin
from .oversight.services import result_view_record


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TestResultForm(forms.ModelForm):
    class Meta:
        model = TestResult
        fields = ("elder", "kind", "sampled_at", "site", "lab", "result", "reported_at", "sampling_photo")

    def clean(self):
        data = super().clean()
        if data.get("sampled_at") and data.get("reported_at") and data["reported_at"] < data["sampled_at"]:
            raise ValidationError("A result cannot be reported before the sample was taken.")
        return data


@admin.register(TestResult)
class TestResultAdmin(AuditedRecordViewMixin, admin.ModelAdmin):
    form = TestResultForm
    list_display = ("elder", "kind", "sampled_at", "result", "lab", "reported_at")
    list_filter = ("kind", "clinic")
    list_select_related = ("elder",)
    date_hierarchy = None

    def get_queryset(self, request):
        visible = permissions.people_visible_to_staff(request.user)
        return super().get_queryset(request).filter(elder__in=visible)

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if "elder" in form.base_fields:  # absent on the read-only detail page
            form.base_fields["elder"].queryset = permissions.people_visible_to_staff(request.user).filter(is_elder=True)
        return form

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def audit_record_view(self, actor, obj) -> None:
        result_view_record(actor=actor, result=obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        try:
            created = services.result_record(
                actor=Actor.from_request(request),
                elder=data["elder"],
                kind=data["kind"],
                sampled_at=data["sampled_at"],
                site=data["site"],
                lab=data["lab"],
                result=data["result"],
                reported_at=data["reported_at"],
                sampling_photo=data.get("sampling_photo"),
            )
        except services.LookupRefused as exc:
            messages.error(request, str(exc))
            return
        obj.pk = created.pk

    def save_related(self, request, form, formsets, change):
        pass


@admin.register(LookupRequest)
class LookupRequestAdmin(ReadOnlyAdmin):
    list_display = ("id", "requester", "elder", "state", "face_attempts", "created_at", "grant_expires_at")
    list_filter = ("state",)
    list_select_related = ("requester", "elder")
    show_full_result_count = False


@admin.register(FaceCheck)
class FaceCheckAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "lookup",
        "state",
        "outcome",
        "reason_code",
        "distance",
        "threshold",
        "model_version",
        "total_ms",
    )
    list_filter = ("outcome",)
    exclude = ("probe_path",)
    show_full_result_count = False


# The audit log, reports, export, dashboard, anomaly flags and notices.
from .fhir import admin as fhir_admin  # noqa: E402, F401 - registers the lab sender and code table admins
from .oversight import admin as oversight_admin  # noqa: E402, F401
