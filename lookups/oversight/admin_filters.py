"""Filters and period forms of the auditors' admin (``lookups.oversight.admin``).

All filters choose from fixed lists or typed input, never a query over millions of rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import cast

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from guardians import permissions
from guardians.models import Clinic, Person

from . import catalog, labels, selectors

# --- filters ------------------------------------------------------------------------------


def _other_params(changelist, remove: list[str]) -> list[tuple[str, str]]:
    query = QueryDict(changelist.get_query_string(remove=[*remove, "p"]).lstrip("?"))
    return [(key, value) for key, values in query.lists() for value in values]


class InputFilter(admin.ListFilter):
    """A free-text filter rendered as a small GET form (no list of choices to compute)."""

    parameter_name = ""
    template = "admin/oversight/input_filter.html"
    placeholder: str | Promise = ""

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.request = request
        if self.parameter_name in params:
            self.used_parameters[self.parameter_name] = params.pop(self.parameter_name)[-1]

    def value(self) -> str:
        return str(self.used_parameters.get(self.parameter_name) or "").strip()

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
    choices_list: Sequence[tuple[str, object]] = ()  # (code, label): only the codes are read here
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
        super().clean()
        data = self.cleaned_data
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
        cast(forms.ChoiceField, self.fields["clinic"]).choices = [("", _("All my clinics"))] + [
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


class AnomalyClinicFilter(ClinicFilter):
    pass
