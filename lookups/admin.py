"""Admin for results, lookups and face checks: read-only, clinic-scoped like the workspace.

Results are recorded at the staff desk (``/staff/results/``); here they are read. The sampling
photo is a private file: no admin page renders its URL (it has none); the change page links to
the staff desk's audited, reason-typed view instead.
"""

from django.contrib import admin

from guardians.admin import ReadOnlyScopedAdmin, sampling_photo_link

from .models import FaceCheck, LookupRequest, TestResult
from .oversight.admin_mixins import AuditedRecordViewMixin
from .oversight.services import result_view_record

# Kept for imports elsewhere: read-only, clinic-scoped.
ReadOnlyAdmin = ReadOnlyScopedAdmin


@admin.register(TestResult)
class TestResultAdmin(AuditedRecordViewMixin, ReadOnlyScopedAdmin):
    list_display = ("elder", "kind", "sampled_at", "result", "lab", "reported_at", "has_photo")
    list_filter = ("kind",)
    list_select_related = ("elder",)
    clinic_field = "elder__clinic_id"
    fields = ("elder", "clinic", "kind", "sampled_at", "site", "lab", "result", "reported_at", "photo")
    readonly_fields = ("photo",)

    @admin.display(boolean=True, description="Sampling photo")
    def has_photo(self, obj: TestResult) -> bool:
        return bool(obj.sampling_photo)

    @admin.display(description="Sampling photo")
    def photo(self, obj: TestResult) -> str:
        return sampling_photo_link(obj)

    def audit_record_view(self, actor, obj) -> None:
        result_view_record(actor=actor, result=obj)


@admin.register(LookupRequest)
class LookupRequestAdmin(ReadOnlyScopedAdmin):
    list_display = ("id", "requester", "elder", "state", "face_attempts", "created_at", "grant_expires_at")
    list_filter = ("state",)
    list_select_related = ("requester", "elder")
    show_full_result_count = False
    clinic_field = "elder__clinic_id"


@admin.register(FaceCheck)
class FaceCheckAdmin(ReadOnlyScopedAdmin):
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
    clinic_field = "lookup__elder__clinic_id"


# The audit log, reports, export, dashboard, anomaly flags and notices.
from .oversight import admin as oversight_admin  # noqa: E402, F401
