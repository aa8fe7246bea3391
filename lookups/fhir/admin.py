"""Admin for laboratory delivery: the auditors' read-only, clinic-scoped room.

- ``LabCodeMap`` stays editable (the issue's "small, admin-editable table"; Django's model
  permissions decide who, superusers by default): it is configuration, not a person's data.
- ``LabSender``, ``LabReport``, ``LabReportVersion`` and ``PendingLabResult`` are read-only for
  everyone and scoped like every other admin model (``guardians.admin.ReadOnlyScopedAdmin``):
  another clinic's row is absent from the list and a 404 on its pages.
- No result value is shown beyond what the ``TestResult`` admin already shows (with its audited
  view): a report lists how many results it holds, never their values; an earlier version and
  a waiting result show their metadata only, never their encrypted payload, and never the ID
  number's keyed hash (a waiting result shows the masked number, as the desk queue does).
  Tokens are never stored, so none can be shown (``manage.py lab_sender`` issues them).
"""

from django.contrib import admin
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from guardians.admin import ReadOnlyScopedAdmin, clinic_ids_for

from .models import LabCodeMap, LabReport, LabReportVersion, LabSender, PendingLabResult


@admin.register(LabCodeMap)
class LabCodeMapAdmin(admin.ModelAdmin):
    list_display = ("system", "code", "kind", "sender")
    list_filter = ("kind", "sender")
    search_fields = ("code", "system")


@admin.register(LabSender)
class LabSenderAdmin(ReadOnlyScopedAdmin):
    """A sender is visible to the members of any clinic it serves."""

    list_display = ("name", "active", "created_at", "rotated_at", "revoked_at")
    fields = ("name", "active", "served_clinics", "created_at", "rotated_at", "revoked_at")
    readonly_fields = ("served_clinics",)
    clinic_field = "clinics__id"

    def scoped_queryset(self, request, queryset):
        return super().scoped_queryset(request, queryset).distinct()

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._kg_reader_clinics = clinic_ids_for(request.user)
        return obj

    @admin.display(description=_("clinics served"))
    def served_clinics(self, obj: LabSender) -> str:
        """Only the reader's own clinics among those served (another clinic is not named)."""
        reader: set[int] | None = getattr(obj, "_kg_reader_clinics", set())
        clinics = obj.clinics.order_by("name")
        if reader is not None:
            clinics = clinics.filter(pk__in=sorted(reader))
        return ", ".join(c.name for c in clinics)


class LabReportVersionInline(admin.TabularInline):
    model = LabReportVersion
    fields = ("version", "status", "replaced_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request, obj=None) -> bool:
        return True  # shown only inside a report page the reader may already see (scoped there)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LabReport)
class LabReportAdmin(ReadOnlyScopedAdmin):
    """One delivered report: who sent it, what became of it, its versions; no values."""

    list_display = ("identifier", "sender", "clinic", "status", "outcome", "version", "received_at", "results_count")
    list_filter = ("outcome", "status")  # no clinic/sender filter: its choices would name other clinics
    list_select_related = ("sender", "clinic")
    search_fields = ("identifier",)
    date_hierarchy = "received_at"
    fields = (
        "sender",
        "identifier",
        "clinic",
        "status",
        "outcome",
        "version",
        "results_count",
        "received_at",
        "corrected_at",
        "withdrawn_at",
    )
    readonly_fields = ("results_count",)
    inlines = [LabReportVersionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_results=Count("results", distinct=True))

    @admin.display(description=_("results held"), ordering="_results")
    def results_count(self, obj: LabReport) -> int:
        """How many results the report holds now: a count, never the values."""
        return getattr(obj, "_results", 0)


@admin.register(LabReportVersion)
class LabReportVersionAdmin(ReadOnlyScopedAdmin):
    """An earlier version replaced by a correction or withdrawal: metadata only, values stay encrypted."""

    list_display = ("report", "version", "status", "replaced_at")
    list_select_related = ("report__sender",)
    list_filter = ("status",)
    fields = ("report", "version", "status", "replaced_at")
    clinic_field = "report__clinic_id"


@admin.register(PendingLabResult)
class PendingLabResultAdmin(ReadOnlyScopedAdmin):
    """A result waiting for a registration, as the desk queue shows it: no values, masked ID."""

    list_display = ("sender", "clinic", "received_at", "id_number_masked", "kinds")
    list_select_related = ("sender", "clinic")
    fields = ("sender", "clinic", "report", "received_at", "id_number_masked", "kinds")
