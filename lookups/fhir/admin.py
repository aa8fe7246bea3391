"""Admin: the lab code table is editable; senders are read-only (tokens via ``manage.py lab_sender``)."""

from django.contrib import admin

from .models import LabCodeMap, LabSender


@admin.register(LabCodeMap)
class LabCodeMapAdmin(admin.ModelAdmin):
    list_display = ("system", "code", "kind", "sender")
    list_filter = ("kind", "sender")
    search_fields = ("code", "system")


@admin.register(LabSender)
class LabSenderAdmin(admin.ModelAdmin):
    list_display = ("name", "active", "created_at", "rotated_at", "revoked_at")
    fields = ("name", "active", "clinics", "created_at", "rotated_at", "revoked_at")
    readonly_fields = ("name", "active", "clinics", "created_at", "rotated_at", "revoked_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
