"""Admin for clinic staff (behind OTPAdminSite). Every write goes through the services."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.urls import reverse
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.middleware import otp_is_fresh
from lookups import face_pipeline
from lookups.audit import Actor
from lookups.oversight.admin_mixins import AuditedRecordViewMixin
from lookups.oversight.services import person_view_record

from . import id_numbers, permissions, phones, services
from .forms import MultipleImageField
from .models import Authorization, Clinic, FaceEnrollment, Person, StaffMembership, User


def _actor(request) -> Actor:
    return Actor.from_request(request)


class ReadOnlyAfterCreateMixin:
    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class StepUpMixin:
    """Changes to authorizations, OTP devices and face enrollments need a one-time code
    presented within KINGUARD_STAFF_REAUTH_SECONDS; otherwise ask for a fresh one first."""

    def _step_up(self, request):
        return redirect_to_login(request.get_full_path(), reverse("staff:reverify"))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        changing = object_id is None or request.method == "POST"
        if changing and not otp_is_fresh(request):
            return self._step_up(request)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        acting = request.method == "POST" and "action" in request.POST
        if acting and not otp_is_fresh(request):
            return self._step_up(request)
        return super().changelist_view(request, extra_context)


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("username", "first_name", "is_staff", "is_active", "face_failures")
    search_fields = ("username", "first_name", "last_name")
    exclude = ("password", "user_permissions")
    readonly_fields = ("last_login", "date_joined", "face_failures", "face_retry_not_before")


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ("name", "address", "phone")
    search_fields = ("name",)


@admin.register(StaffMembership)
class StaffMembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "clinic", "role")
    list_filter = ("role", "clinic")


class PersonRegisterForm(forms.ModelForm):
    id_number = forms.CharField(label="ID number (18 characters)", max_length=22)

    class Meta:
        model = Person
        fields = ("clinic", "full_name", "id_number", "phone", "notify_email", "is_elder", "is_guardian", "user")

    def clean_id_number(self) -> str:
        try:
            number, _ = id_numbers.validate(self.cleaned_data["id_number"])
            services.person_check_not_registered(id_number=number)
        except (id_numbers.InvalidIdNumber, services.ServiceError) as exc:
            raise ValidationError(str(exc)) from exc
        return number

    def clean_phone(self) -> str:
        try:
            return phones.normalize(self.cleaned_data.get("phone", ""))
        except phones.InvalidPhoneNumber as exc:
            raise ValidationError(phones.INVALID_MESSAGE) from exc


@admin.register(Person)
class PersonAdmin(AuditedRecordViewMixin, ReadOnlyAfterCreateMixin, admin.ModelAdmin):
    list_display = ("full_name", "id_number_masked", "clinic", "is_elder", "is_guardian", "user")
    list_filter = ("clinic", "is_elder", "is_guardian")
    search_fields = ("full_name",)
    list_select_related = ("clinic", "user")

    def audit_record_view(self, actor, obj) -> None:
        person_view_record(actor=actor, person=obj)

    def get_queryset(self, request):
        return permissions.people_visible_to_staff(request.user).select_related("clinic", "user")

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = PersonRegisterForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return (
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

    def get_fields(self, request, obj=None):
        if obj is None:
            return PersonRegisterForm.Meta.fields
        return self.get_readonly_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        try:
            person = services.person_register(
                actor=_actor(request),
                clinic=data["clinic"],
                full_name=data["full_name"],
                id_number=data["id_number"],
                is_elder=data["is_elder"],
                is_guardian=data["is_guardian"],
                phone=data["phone"],
                notify_email=data["notify_email"],
                user=data["user"],
            )
        except services.ServiceError as exc:  # only a concurrent registration gets here
            messages.error(request, str(exc))
            return
        obj.pk = person.pk

    def save_related(self, request, form, formsets, change):
        pass


class AuthorizationCreateForm(forms.ModelForm):
    class Meta:
        model = Authorization
        fields = ("guardian", "elder", "relationship", "consent_basis", "consent_reference", "valid_until")
        help_texts = {"valid_until": "Leave empty for the default of 12 months."}

    def __init__(self, *args, actor: Actor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        self.fields["valid_until"].required = False
        if actor is not None and actor.user is not None:
            visible = permissions.people_visible_to_staff(actor.user)
            self.fields["guardian"].queryset = visible.filter(is_guardian=True)
            self.fields["elder"].queryset = visible.filter(is_elder=True)

    def clean(self):
        data = super().clean()
        if self.errors or self.actor is None:
            return data
        try:
            services.authorization_check_request(
                actor=self.actor,
                guardian=data["guardian"],
                elder=data["elder"],
                consent_basis=data["consent_basis"],
                consent_reference=data.get("consent_reference", ""),
                valid_until=data.get("valid_until"),
            )
        except services.ServiceError as exc:
            raise ValidationError(str(exc)) from exc
        return data


@admin.register(Authorization)
class AuthorizationAdmin(StepUpMixin, ReadOnlyAfterCreateMixin, admin.ModelAdmin):
    list_display = ("guardian", "elder", "relationship", "status", "valid_until", "registered_by", "approved_by")
    list_filter = ("status", "clinic")
    list_select_related = ("guardian", "elder", "registered_by", "approved_by")
    actions = ["approve", "revoke_elder_request", "revoke_guardian_request", "suspend"]

    def get_queryset(self, request):
        return permissions.authorizations_visible_to_staff(request.user)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = AuthorizationCreateForm
            form_class = super().get_form(request, obj, **kwargs)
            actor = _actor(request)

            class BoundActorForm(form_class):
                def __init__(self, *args, **inner):
                    super().__init__(*args, actor=actor, **inner)

            return BoundActorForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return AuthorizationCreateForm.Meta.fields
        return [f.name for f in Authorization._meta.fields]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else [f.name for f in Authorization._meta.fields]

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        try:
            created = services.authorization_create(
                actor=_actor(request),
                guardian=data["guardian"],
                elder=data["elder"],
                relationship=data["relationship"],
                consent_basis=data["consent_basis"],
                consent_reference=data.get("consent_reference", ""),
                valid_until=data.get("valid_until"),
            )
        except services.ServiceError as exc:  # only a concurrent change gets here
            messages.error(request, str(exc))
            return
        obj.pk = created.pk

    def save_related(self, request, form, formsets, change):
        pass

    def _each(self, request, queryset, call, done: str) -> None:
        for authorization in queryset:
            try:
                call(authorization)
            except services.ServiceError as exc:
                self.message_user(request, f"{authorization}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{authorization}: {done}", messages.SUCCESS)

    @admin.action(description="Approve (second staff member)")
    def approve(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda a: services.authorization_approve(actor=_actor(request), authorization_id=a.pk),
            "approved",
        )

    @admin.action(description="Revoke at the elder's request")
    def revoke_elder_request(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda a: services.authorization_revoke(
                actor=_actor(request), authorization_id=a.pk, reason="At the elder's request", requested_by="elder"
            ),
            "revoked",
        )

    @admin.action(description="Revoke at the guardian's request")
    def revoke_guardian_request(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda a: services.authorization_revoke(
                actor=_actor(request),
                authorization_id=a.pk,
                reason="At the guardian's request",
                requested_by="guardian",
            ),
            "revoked",
        )

    @admin.action(description="Suspend")
    def suspend(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda a: services.authorization_suspend(
                actor=_actor(request), authorization_id=a.pk, reason="Suspended by staff"
            ),
            "suspended",
        )


DEFAULT_CONSENT_TEXT = (
    "I agree that Kinguard stores a mathematical template of my face (not the photo), encrypted, "
    "to confirm that it is me when I look up test results. I can withdraw this consent at the clinic "
    "at any time, and the template is then deleted."
)


class FaceEnrollmentForm(forms.ModelForm):
    photos = MultipleImageField(label="Photos of the face (1 to 5; more than one lowers false rejections)")
    consent_text = forms.CharField(widget=forms.Textarea, initial=DEFAULT_CONSENT_TEXT)
    consent_given = forms.BooleanField(label="The person read this text and gave their consent")

    class Meta:
        model = FaceEnrollment
        fields = ("person",)

    def clean_photos(self):
        photos = self.cleaned_data["photos"]
        if not 1 <= len(photos) <= 5:
            raise ValidationError("Upload between 1 and 5 photos.")
        images = [photo.read(face_pipeline.MAX_UPLOAD_BYTES + 1) for photo in photos]
        try:
            self.samples = services.face_samples_from_images(images)
        except face_pipeline.ProbeRejected as exc:
            raise ValidationError(f"Photo {exc.image_index + 1}: {exc.message}") from exc
        return images


@admin.register(FaceEnrollment)
class FaceEnrollmentAdmin(StepUpMixin, ReadOnlyAfterCreateMixin, admin.ModelAdmin):
    list_display = ("person", "sample_count", "model_version", "enrolled_by", "enrolled_at")
    form = FaceEnrollmentForm

    def get_queryset(self, request):
        visible = permissions.people_visible_to_staff(request.user)
        return super().get_queryset(request).filter(person__in=visible).select_related("person", "enrolled_by")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("person", "photos", "consent_text", "consent_given")
        return ("person", "sample_count", "model_version", "consent_text", "consented_at", "enrolled_by", "enrolled_at")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.get_fields(request, obj)

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.ModelForm
            kwargs["fields"] = []
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            form.base_fields["person"].queryset = permissions.people_visible_to_staff(request.user)
        return form

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        enrollment = services.face_enroll(
            actor=_actor(request), person=data["person"], samples=form.samples, consent_text=data["consent_text"]
        )
        obj.pk = enrollment.pk

    def save_related(self, request, form, formsets, change):
        pass


admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class AuditedTOTPDeviceAdmin(StepUpMixin, TOTPDeviceAdmin):
    def save_model(self, request, obj, form, change):
        services.totp_device_save_from_admin(actor=_actor(request), device=obj, created=not change)
