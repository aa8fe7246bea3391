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

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from guardians import permissions
from guardians.models import Person
from guardians.typing import AuthenticatedHttpRequest

from ..audit import Actor
from ..models import AnomalyFlag, AuditEvent
from . import charts, labels, notices, selectors, services, spreadsheet
from .admin_filters import (
    ActionFilter,
    ActorFilter,
    ClinicFilter,
    DashboardForm,
    OutcomeFilter,
    PeriodFilter,
    PeriodForm,
    SubjectFilter,
    _period,
)
from .paginator import EstimatedCountPaginator

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
        return obj.clinic.name if obj.clinic is not None else "–"

    @admin.display(description=gettext_lazy("subject"))
    def subject_link(self, obj: AuditEvent):
        subject = obj.subject
        if subject is None:
            return "–"
        url = reverse("admin:lookups_auditevent_elder_report", args=[subject.public_id])
        return format_html('<a href="{}">{}</a>', url, subject.full_name)

    @admin.display(description=gettext_lazy("reports"))
    def reports(self, obj: AuditEvent):
        links = []
        subject = obj.subject
        if subject is not None:
            links.append(
                format_html(
                    '<a href="{}">{}</a>',
                    reverse("admin:lookups_auditevent_elder_report", args=[subject.public_id]),
                    _("Access report of %(name)s") % {"name": subject.full_name},
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

    def _require_auditor(self, request: AuthenticatedHttpRequest) -> None:
        if not permissions.can_view_audit(request.user):
            raise PermissionDenied

    def _context(self, request: HttpRequest, title: str, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def dashboard_view(self, request: AuthenticatedHttpRequest) -> HttpResponse:
        self._require_auditor(request)
        today = timezone.localdate()
        since, until = today - dt.timedelta(days=29), today
        clinic_id: int | None = None
        initial = {"since": since, "until": until, "clinic": ""}
        form = DashboardForm(request.GET if "since" in request.GET else None, initial=initial, user=request.user)
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

    def reports_view(self, request: AuthenticatedHttpRequest) -> HttpResponse:
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

    def elder_report_view(self, request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
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

    def guardian_activity_view(self, request: AuthenticatedHttpRequest, public_id) -> HttpResponse:
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

    def export_view(self, request: AuthenticatedHttpRequest) -> HttpResponseBase:
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


# Registers AnomalyFlag and Notice (imported for that effect).
from . import admin_flags  # noqa: E402, F401
