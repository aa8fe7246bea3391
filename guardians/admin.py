"""Admin for clinic staff (behind the Kinguard admin site): read-only and clinic-scoped.

One desk for writes: people, authorizations, face enrollments, OTP devices, memberships and
results are changed in ``/staff/`` only. Here auditors, managers and staff *read* them, each
queryset scoped by the one rule (``permissions.clinic_ids_where(user, READ_RECORDS)``; superusers
see every clinic), so another clinic's object is absent from the list and its change, delete
and history URLs answer 404. No page shows an OTP secret (TOTP key, ``otpauth://`` QR, static
tokens) or links a private file.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils.html import format_html
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from lookups.oversight.admin_mixins import AuditedRecordViewMixin
from lookups.oversight.services import person_view_record

from . import permissions
from .models import Authorization, Clinic, FaceEnrollment, Person, StaffMembership, User


def clinic_ids_for(user: User) -> set[int] | None:
    """The clinics whose records ``user`` reads in the admin (``READ_RECORDS``); None: every clinic."""
    if not hasattr(user, "_kg_admin_clinic_ids"):  # one query per request, not per model
        ids = permissions.clinic_ids_where(user, permissions.StaffAction.READ_RECORDS)
        # A per-request memo on the user object (request.user may be a lazy proxy), not a model field.
        setattr(user, "_kg_admin_clinic_ids", None if ids is None else frozenset(ids))  # noqa: B010
    cached: frozenset[int] | None = getattr(user, "_kg_admin_clinic_ids")  # noqa: B009  # undeclared attribute
    return None if cached is None else set(cached)


def scope(queryset: QuerySet, user: User, field: str) -> QuerySet:
    """``queryset`` limited to rows whose ``field`` (a clinic id lookup) is one of the user's clinics."""
    clinic_ids = clinic_ids_for(user)
    return queryset if clinic_ids is None else queryset.filter(**{f"{field}__in": sorted(clinic_ids)})


class ReadOnlyScopedAdmin(admin.ModelAdmin):
    """Read-only for everyone (superusers too); visible to superusers and clinic members.

    ``clinic_field`` is the lookup to the row's clinic id; subclasses with another shape
    override ``scoped_queryset``.
    """

    clinic_field = "clinic_id"
    actions = None

    def scoped_queryset(self, request, queryset: QuerySet) -> QuerySet:
        return scope(queryset, request.user, self.clinic_field)

    def get_queryset(self, request):
        return self.scoped_queryset(request, super().get_queryset(request))

    def _require_visible(self, request, object_id: str) -> None:
        """Another clinic's object (or none) is a 404, not the admin's redirect with a message."""
        if self.get_object(request, unquote(object_id)) is None:
            raise Http404

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._require_visible(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._require_visible(request, object_id)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._require_visible(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        clinic_ids = clinic_ids_for(request.user)
        return clinic_ids is None or bool(clinic_ids)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)


@admin.register(User)
class UserAdmin(ReadOnlyScopedAdmin):
    list_display = ("username", "first_name", "is_staff", "is_active", "face_failures")
    search_fields = ("username", "first_name", "last_name")
    fields = (
        "username",
        "first_name",
        "last_name",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "last_login",
        "date_joined",
        "face_failures",
        "face_retry_not_before",
    )

    def scoped_queryset(self, request, queryset):
        clinic_ids = clinic_ids_for(request.user)
        if clinic_ids is None:
            return queryset
        ids = sorted(clinic_ids)
        return queryset.filter(Q(memberships__clinic_id__in=ids) | Q(person__clinic_id__in=ids)).distinct()


@admin.register(Clinic)
class ClinicAdmin(ReadOnlyScopedAdmin):
    """Clinics: superusers add and edit them (an audited admin change); members read their own."""

    list_display = ("name", "address", "phone")
    search_fields = ("name",)
    clinic_field = "pk"

    def has_add_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_active and request.user.is_superuser


@admin.register(StaffMembership)
class StaffMembershipAdmin(ReadOnlyScopedAdmin):
    list_display = ("user", "clinic", "role")
    list_filter = ("role",)
    list_select_related = ("user", "clinic")


@admin.register(Person)
class PersonAdmin(AuditedRecordViewMixin, ReadOnlyScopedAdmin):
    list_display = ("full_name", "id_number_masked", "clinic", "is_elder", "is_guardian", "user")
    list_filter = ("is_elder", "is_guardian")
    search_fields = ("full_name",)
    list_select_related = ("clinic", "user")
    fields = (
        "public_id",
        "clinic",
        "full_name",
        "id_number_masked",
        "birth_date",
        "phone",
        "notify_email",
        "is_elder",
        "is_guardian",
        "user",
        "created_at",
        "created_by",
    )
    readonly_fields = fields

    def audit_record_view(self, actor, obj) -> None:
        person_view_record(actor=actor, person=obj)


@admin.register(Authorization)
class AuthorizationAdmin(ReadOnlyScopedAdmin):
    list_display = ("guardian", "elder", "relationship", "status", "valid_until", "registered_by", "approved_by")
    list_filter = ("status",)
    list_select_related = ("guardian", "elder", "registered_by", "approved_by")


@admin.register(FaceEnrollment)
class FaceEnrollmentAdmin(ReadOnlyScopedAdmin):
    list_display = ("person", "sample_count", "model_version", "enrolled_by", "enrolled_at")
    list_select_related = ("person", "enrolled_by")
    clinic_field = "person__clinic_id"
    fields = ("person", "sample_count", "model_version", "consent_text", "consented_at", "enrolled_by", "enrolled_at")


class DeviceAdmin(ReadOnlyScopedAdmin):
    """OTP devices, read-only and without their secrets (key, QR, tokens are never shown).

    A device belongs to a user; it is visible when that user is a member of (or registered as a
    person at) one of the reader's clinics.
    """

    list_display = ("user", "name", "confirmed", "created_at", "last_used_at")
    list_select_related = ("user",)
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")

    def scoped_queryset(self, request, queryset):
        clinic_ids = clinic_ids_for(request.user)
        if clinic_ids is None:
            return queryset
        ids = sorted(clinic_ids)
        return queryset.filter(Q(user__memberships__clinic_id__in=ids) | Q(user__person__clinic_id__in=ids)).distinct()


# django-otp's own admins display the TOTP key, the otpauth:// QR and static tokens.
for _model in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(DeviceAdmin):
    pass


@admin.register(StaticDevice)
class StaticDeviceAdmin(DeviceAdmin):
    pass


def sampling_photo_link(result) -> str:
    """Link to the staff desk's audited, reason-typed photo view (never the file's own URL)."""
    if not result.sampling_photo:
        return "—"
    return format_html('<a href="{}">Open with a reason (audited)</a>', reverse("staff:result_photo", args=[result.pk]))
