"""The auditors' admin: audit log list and detail, reports, CSV export, dashboard, anomalies.

Read-only for everyone: the audit log itself cannot be changed through the admin. Access
comes from ``guardians.permissions`` (auditors and managers of a clinic see that clinic's
events; superusers see all). Built to stay fast on millions of events: no date_hierarchy,
filters from fixed lists, no full result count, an estimated paginator, ordering by
``-sequence`` over composite indexes.
"""

from __future__ import annotations

import csv
import datetime as dt
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from guardians import permissions
from guardians.models import Clinic, Person

from ..audit import Actor
from ..models import AnomalyFlag, AuditEvent, Notice
from . import anomalies, catalog, charts, labels, notices, selectors, services, spreadsheet
from .paginator import EstimatedCountPaginator

# --- filters ------------------------------------------------------------------------------


def _other_params(changelist, remove: list[str]) -> list[tuple[str, str]]:
    query = QueryDict(changelist.get_query_string(remove=[*remove, "p"]).lstrip("?"))
    return [(key, value) for key, values in query.lists() for value in values]


class InputFilter(admin.ListFilter):
    """A free-text filter rendered as a small GET form (no list of choices to compute)."""

    parameter_name = ""
    template = "admin/oversight/input_filter.html"
    placeholder = ""

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.request = request
        if self.parameter_name in params:
            self.used_parameters[self.parameter_name] = params.pop(self.parameter_name)[-1]

    def value(self) -> str:
        return (self.used_parameters.get(self.parameter_name) or "").strip()

    def has_output(self) -> bool:
        return True

    def expected_parameters(self):
        return [self.parameter_name]

    def choices(self, changelist):
        yield {
            "parameter_name": self.parameter_name,
            "value": self.value(),
            "placeholder": self.placeholder,
            "others": _other_params(changelist, [self.parameter_name]),
            "clear_url": changelist.get_query_string(remove=[self.parameter_name, "p"]),
        }


class ActorFilter(InputFilter):
    title = gettext_lazy("actor (username or system:name)")
    parameter_name = "actor"
    placeholder = gettext_lazy("e.g. li.wei or system:face-worker")

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(actor_label=value[:150]) if value else queryset


class SubjectFilter(InputFilter):
    title = gettext_lazy("subject (person's public id)")
    parameter_name = "subject"
    placeholder = gettext_lazy("public id (from a report link)")

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            public_id = uuid.UUID(value)
        except ValueError:
            messages.warning(request, _("The subject filter needs a person's public id; it was ignored."))
            return queryset
        person_id = Person.objects.filter(public_id=public_id).values_list("pk", flat=True).first()
        return queryset.filter(subject_id=person_id) if person_id else queryset.none()


class PeriodFilter(admin.ListFilter):
    """Events from ``since`` to ``until`` inclusive (local dates): two date inputs."""

    title = gettext_lazy("period (local dates)")
    template = "admin/oversight/period_filter.html"
    names = ("since", "until")

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.dates: dict[str, dt.date | None] = {}
        self.raw: dict[str, str] = {}
        for name in self.names:
            raw = params.pop(name)[-1].strip() if name in params else ""
            self.raw[name] = raw
            self.dates[name] = None
            if raw:
                self.used_parameters[name] = raw
                try:
                    self.dates[name] = dt.date.fromisoformat(raw)
                except ValueError:
                    messages.warning(request, _("“%(raw)s” is not a date (YYYY-MM-DD); it was ignored.") % {"raw": raw})

    def has_output(self) -> bool:
        return True

    def expected_parameters(self):
        return list(self.names)

    def choices(self, changelist):
        yield {
            "since": self.raw["since"],
            "until": self.raw["until"],
            "others": _other_params(changelist, list(self.names)),
            "clear_url": changelist.get_query_string(remove=[*self.names, "p"]),
        }

    def queryset(self, request, queryset):
        since, until = self.dates["since"], self.dates["until"]
        if since:
            queryset = queryset.filter(created_at__gte=selectors.local_day_bounds(since, since)[0])
        if until:
            queryset = queryset.filter(created_at__lt=selectors.local_day_bounds(until, until)[1])
        return queryset


class FixedChoicesFilter(admin.SimpleListFilter):
    choices_list: list[tuple[str, str]] = []
    field = ""

    label = staticmethod(lambda code: code)

    def lookups(self, request, model_admin):
        return [(code, self.label(code)) for code, _label in self.choices_list]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class ActionFilter(FixedChoicesFilter):
    title = gettext_lazy("action")
    parameter_name = "action"
    field = "action"
    choices_list = catalog.action_choices()
    label = staticmethod(labels.action_label)


class OutcomeFilter(FixedChoicesFilter):
    title = gettext_lazy("outcome")
    parameter_name = "outcome"
    field = "outcome"
    choices_list = catalog.OUTCOMES
    label = staticmethod(labels.outcome_label)


class ClinicFilter(admin.SimpleListFilter):
    """The user's audit clinics (a handful of rows), never a DISTINCT over the events."""

    title = gettext_lazy("clinic")
    parameter_name = "clinic"

    def lookups(self, request, model_admin):
        scope = permissions.audit_clinic_ids(request.user)
        clinics = Clinic.objects.all() if scope is None else Clinic.objects.filter(pk__in=scope)
        return [(str(pk), name) for pk, name in clinics.order_by("name").values_list("pk", "name")]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(clinic_id=int(value))


# --- forms --------------------------------------------------------------------------------


class PeriodForm(forms.Form):
    since = forms.DateField(label=gettext_lazy("From (local date)"), widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(
        label=gettext_lazy("To (local date, inclusive)"), widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise forms.ValidationError(_("The period ends before it starts."))
        return data


class DashboardForm(PeriodForm):
    """Period (at most DASHBOARD_MAX_DAYS days) and one of the user's audit clinics, or all."""

    clinic = forms.ChoiceField(label=gettext_lazy("Clinic"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        scope = permissions.audit_clinic_ids(user)
        clinics = Clinic.objects.all() if scope is None else Clinic.objects.filter(pk__in=scope)
        self.fields["clinic"].choices = [("", _("All my clinics"))] + [
            (str(pk), name) for pk, name in clinics.order_by("name").values_list("pk", "name")
        ]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and (data["until"] - data["since"]).days >= DASHBOARD_MAX_DAYS:
            raise forms.ValidationError(_("Choose a period of at most %(days)d days.") % {"days": DASHBOARD_MAX_DAYS})
        return data


DASHBOARD_MAX_DAYS = 366


def _period(request: HttpRequest, default_days: int = 365) -> tuple[PeriodForm, dt.datetime, dt.datetime]:
    """The period asked for in GET, or the last ``default_days`` days when none or invalid."""
    today = timezone.localdate()
    initial = {"since": today - dt.timedelta(days=default_days - 1), "until": today}
    form = PeriodForm(request.GET if "since" in request.GET else None, initial=initial)
    since, until = initial["since"], initial["until"]
    if form.is_bound and form.is_valid():
        since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    start, end = selectors.local_day_bounds(since, until)
    return form, start, end


# --- the audit log ------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("seq", "when", "actor_col", "action_col", "outcome_col", "subject_link", "clinic_col", "ip")
    list_display_links = ("seq",)
    list_filter = (ActionFilter, OutcomeFilter, ClinicFilter, ActorFilter, SubjectFilter, PeriodFilter)
    list_select_related = ("subject", "clinic")
    list_per_page = 100
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    ordering = ("-sequence",)
    change_list_template = "admin/oversight/auditevent_change_list.html"
    fields = (
        "sequence",
        "created_at",
        "actor_label",
        "actor",
        "clinic",
        "action",
        "outcome",
        "subject",
        "target_type",
        "target_id",
        "ip",
        "user_agent",
        "details",
        "prev_hash",
        "hash",
        "reports",
    )
    readonly_fields = fields

    # The log is read-only for everyone, superusers included.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return permissions.can_view_audit(request.user, obj.clinic_id if obj and obj.clinic_id else None)

    def has_module_permission(self, request) -> bool:
        return permissions.can_view_audit(request.user)

    def get_actions(self, request):
        return {}

    def get_queryset(self, request):
        return selectors.audit_events_for(request.user)

    def get_ordering(self, request):
        """Newest first by ``-sequence``; within a period by time (then sequence), so the
        (created_at) index serves the range instead of a backward walk over the whole chain
        down to the period's last event. Both orders agree while the hosts' clocks do."""
        if request.GET.get("since") or request.GET.get("until"):
            return ("-created_at", "-sequence")
        return ("-sequence",)

    @admin.display(description=gettext_lazy("#"), ordering="sequence")
    def seq(self, obj: AuditEvent) -> int:
        return obj.sequence

    @admin.display(description=gettext_lazy("time"), ordering="created_at")
    def when(self, obj: AuditEvent) -> dt.datetime:
        return obj.created_at

    @admin.display(description=gettext_lazy("actor"), ordering="actor_label")
    def actor_col(self, obj: AuditEvent) -> str:
        return obj.actor_label

    @admin.display(description=gettext_lazy("action"), ordering="action")
    def action_col(self, obj: AuditEvent) -> str:
        return labels.action_label(obj.action)

    @admin.display(description=gettext_lazy("outcome"), ordering="outcome")
    def outcome_col(self, obj: AuditEvent) -> str:
        return labels.outcome_label(obj.outcome)

    @admin.display(description=gettext_lazy("clinic"), ordering="clinic")
    def clinic_col(self, obj: AuditEvent) -> str:
        return obj.clinic.name if obj.clinic_id else "–"

    @admin.display(description=gettext_lazy("subject"))
    def subject_link(self, obj: AuditEvent):
        if obj.subject_id is None:
            return "–"
        url = reverse("admin:lookups_auditevent_elder_report", args=[obj.subject.public_id])
        return format_html('<a href="{}">{}</a>', url, obj.subject.full_name)

    @admin.display(description=gettext_lazy("reports"))
    def reports(self, obj: AuditEvent):
        links = []
        if obj.subject_id:
            links.append(
                format_html(
                    '<a href="{}">{}</a>',
                    reverse("admin:lookups_auditevent_elder_report", args=[obj.subject.public_id]),
                    _("Access report of %(name)s") % {"name": obj.subject.full_name},
                )
            )
        person = Person.objects.filter(user_id=obj.actor_id).first() if obj.actor_id else None
        if person is not None:
            links.append(
                format_html(
                    '<a href="{}">{}</a>',
                    reverse("admin:lookups_auditevent_guardian_activity", args=[person.public_id]),
                    _("Activity of %(name)s") % {"name": person.full_name},
                )
            )
        return format_html(" · ".join(["{}"] * len(links)), *links) if links else "–"

    # --- extra pages --------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        extra = [
            path("dashboard/", wrap(self.dashboard_view), name="lookups_auditevent_dashboard"),
            path("export/", wrap(self.export_view), name="lookups_auditevent_export"),
            path("reports/", wrap(self.reports_view), name="lookups_auditevent_reports"),
            path("elder/<uuid:public_id>/", wrap(self.elder_report_view), name="lookups_auditevent_elder_report"),
            path(
                "guardian/<uuid:public_id>/",
                wrap(self.guardian_activity_view),
                name="lookups_auditevent_guardian_activity",
            ),
        ]
        return extra + super().get_urls()

    def _require_auditor(self, request: HttpRequest) -> None:
        if not permissions.can_view_audit(request.user):
            raise PermissionDenied

    def _context(self, request: HttpRequest, title: str, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        self._require_auditor(request)
        today = timezone.localdate()
        initial = {"since": today - dt.timedelta(days=29), "until": today, "clinic": ""}
        form = DashboardForm(request.GET if "since" in request.GET else None, initial=initial, user=request.user)
        since, until, clinic_id = initial["since"], initial["until"], None
        if form.is_bound and form.is_valid():
            since, until = form.cleaned_data["since"], form.cleaned_data["until"]
            clinic_id = int(form.cleaned_data["clinic"]) if form.cleaned_data["clinic"] else None
        data = selectors.dashboard_data(request.user, days=(until - since).days + 1, today=until, clinic_id=clinic_id)
        series = {pgettext("audit outcome", name): values for name, values in data.lookups_by_outcome.items()}
        rates = {_("OTP failure rate"): data.otp_failure_rate, _("Face failure rate"): data.face_failure_rate}
        flags = AnomalyFlag.objects.filter(status=AnomalyFlag.Status.OPEN)
        scope = permissions.audit_scope_q(request.user)
        if scope is not None:
            flags = flags.filter(scope)
        context = self._context(
            request,
            _("Audit dashboard"),
            data=data,
            lookups_chart=charts.stacked_bars(_("Lookups per day by outcome"), data.days, series),
            failures_chart=charts.rate_lines(
                _("Failure rates per day"),
                data.days,
                rates,
            ),
            open_flags=flags.count(),
            form=form,
            series=series,
            rates=rates,
            table_rows=[
                {
                    "day": day,
                    "counts": [values[i] for values in series.values()],
                    "rates": [values[i] for values in rates.values()],
                }
                for i, day in enumerate(data.days)
            ],
        )
        return TemplateResponse(request, "admin/oversight/dashboard.html", context)

    def reports_view(self, request: HttpRequest) -> HttpResponse:
        """Find a person (name prefix, within the auditor's clinics) to open their reports."""
        self._require_auditor(request)
        query = (request.GET.get("q") or "").strip()[:100]
        people = []
        if query:
            people = list(
                permissions.people_visible_to_auditor(request.user)
                .filter(full_name__istartswith=query)
                .select_related("clinic")
                .order_by("full_name")[:50]
            )
        context = self._context(request, _("Access reports"), query=query, people=people)
        return TemplateResponse(request, "admin/oversight/reports.html", context)

    def elder_report_view(self, request: HttpRequest, public_id) -> HttpResponse:
        self._require_auditor(request)
        elder = selectors.person_for_auditor(request.user, public_id)
        if elder is None:
            raise Http404(_("No such person in your clinics."))
        form, start, end = _period(request)
        services.audit_report_view_record(
            actor=Actor.from_request(request),
            report="elder_access",
            subject=elder,
            details={"since": start.isoformat(), "until": end.isoformat()},
        )
        # The printed report is for the elder: built and rendered in the elder's language
        # (as their notices are), whatever the auditor's own language.
        with translation.override(notices.notice_language(elder)):
            report = selectors.elder_report(request.user, elder, start, end)
            form = PeriodForm(form.data if form.is_bound else None, initial=form.initial)
            context = {
                "report": report,
                "form": form,
                "generated_at": timezone.now(),
                "generated_by": request.user.get_username(),
                "list_url": reverse("admin:lookups_auditevent_changelist") + "?" + urlencode({"subject": public_id}),
                "until_display": end - dt.timedelta(days=1),
            }
            response = TemplateResponse(request, "oversight/elder_report.html", context)
            response.render()
            response["Content-Language"] = translation.get_language()
        return response

    def guardian_activity_view(self, request: HttpRequest, public_id) -> HttpResponse:
        self._require_auditor(request)
        guardian = selectors.person_for_auditor(request.user, public_id)
        if guardian is None:
            raise Http404(_("No such person in your clinics."))
        form, start, end = _period(request, default_days=90)
        activity = selectors.guardian_activity(request.user, guardian, start, end)
        services.audit_report_view_record(
            actor=Actor.from_request(request),
            report="guardian_activity",
            subject=guardian,
            details={"since": start.isoformat(), "until": end.isoformat()},
        )
        action_labels = {event.action: labels.action_label(event.action) for event in activity.events}
        context = self._context(
            request,
            _("Activity of %(name)s") % {"name": guardian.full_name},
            activity=activity,
            form=form,
            labels=action_labels,
        )
        return TemplateResponse(request, "admin/oversight/guardian_activity.html", context)

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """A form, then the period's events as CSV (spreadsheet) or, with ``format=jsonl``, as the
        verification bundle checked by ``python -m lookups.audit_verify``; streamed in chain order."""
        self._require_auditor(request)
        form = PeriodForm(request.GET if "since" in request.GET else None)
        if not form.is_bound or not form.is_valid():
            context = self._context(request, _("Export the audit log (CSV)"), form=form)
            return TemplateResponse(
                request, "admin/oversight/export.html", context, status=400 if form.is_bound else 200
            )
        since, until = form.cleaned_data["since"], form.cleaned_data["until"]
        start, end = selectors.local_day_bounds(since, until)
        up_to = selectors.chain_head_sequence()
        clinics = permissions.audit_clinic_ids(request.user)
        bundle = request.GET.get("format") == "jsonl"  # the verification bundle of the same export
        services.audit_export_record(
            actor=Actor.from_request(request),
            details={
                "since": since.isoformat(),
                "until": until.isoformat(),
                "up_to_sequence": up_to,
                "clinics": "all" if clinics is None else sorted(clinics),
                "format": "jsonl" if bundle else "csv",
            },
        )
        if bundle:
            response = StreamingHttpResponse(
                selectors.bundle_lines(request.user, start, end, up_to), content_type="application/x-ndjson"
            )
            response["Content-Disposition"] = f'attachment; filename="kinguard-audit-{since}-{until}.jsonl"'
            response["Cache-Control"] = "no-store"
            return response
        writer = csv.writer(_Echo())

        def rows():
            yield spreadsheet.BOM + writer.writerow(selectors.EXPORT_COLUMNS)
            for row in selectors.export_rows(request.user, start, end, up_to):
                yield writer.writerow(spreadsheet.neutralise_row(row))

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="kinguard-audit-{since}-{until}.csv"'
        response["Cache-Control"] = "no-store"
        return response


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streaming response."""

    def write(self, value: str) -> str:
        return value


# --- anomaly flags ------------------------------------------------------------------------


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


class AnomalyClinicFilter(ClinicFilter):
    pass


def _column(field: str, title):
    """A list column for a model field with a translated title (the fields have no verbose_name)."""

    @admin.display(description=title, ordering=field)
    def column(self, obj):
        display = getattr(obj, f"get_{field}_display", None)
        return display() if display else getattr(obj, field)

    column.__name__ = f"{field}_col"
    return column


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
    readonly_fields = (
        "rule",
        "key",
        "status",
        "count",
        "window_start",
        "window_end",
        "clinic",
        "account",
        "details",
        "created_at",
        "last_seen_at",
        "acknowledged_by",
        "acknowledged_at",
        "resolved_by",
        "resolved_at",
        "resolution_note",
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
                self.message_user(request, f"{flag}: acknowledged.", messages.SUCCESS)


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
    exclude = ("context",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False
