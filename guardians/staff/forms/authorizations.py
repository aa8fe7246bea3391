"""Authorization terms, ending (revoke/suspend) and renewal."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from guardians import permissions, services
from guardians.models import Authorization, Person, User

from .common import DATE_INPUT, A, model_choice_field

MAX_AUTHORIZATION_YEARS = 5


def end_of_day_after(day: dt.date) -> dt.datetime:
    """An authorization valid "until 2027-05-01" ends at midnight after that day (local time)."""
    return timezone.make_aware(dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min))


# --- authorizations -----------------------------------------------------------------------


class AuthorizationForm(forms.Form):
    elder: forms.ModelChoiceField[Person] = forms.ModelChoiceField(
        queryset=None, to_field_name="public_id", widget=forms.HiddenInput
    )
    guardian: forms.ModelChoiceField[Person] = forms.ModelChoiceField(
        queryset=None, to_field_name="public_id", widget=forms.HiddenInput
    )
    relationship = forms.ChoiceField(label=_("The guardian is the elder's"), choices=Authorization.Relationship.choices)
    scope = forms.ChoiceField(
        label=_("What the guardian may look up"),
        choices=Authorization.Scope.choices,
        initial=Authorization.Scope.TEST_RESULTS,
        widget=forms.RadioSelect,
    )
    valid_until = forms.DateField(
        label=_("Valid until (inclusive)"),
        widget=DATE_INPUT,
        help_text=_("12 months from today unless you change it. Every authorization ends."),
    )
    consent_basis = forms.ChoiceField(
        label=_("Consent"),
        choices=Authorization.ConsentBasis.choices,
        initial=Authorization.ConsentBasis.ELDER_PRESENT,
        widget=forms.RadioSelect,
    )
    consent_reference = forms.CharField(
        label=_("Reference of the legal document (court order, notarised power of attorney …)"),
        max_length=200,
        required=False,
    )

    def __init__(self, *args, user: User, actor, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor = actor
        people = permissions.staff_people(user, A.MANAGE_AUTHORIZATIONS)
        model_choice_field(self, "elder").queryset = people.filter(is_elder=True)
        model_choice_field(self, "guardian").queryset = people.filter(is_guardian=True)
        self.fields["valid_until"].initial = timezone.localdate() + dt.timedelta(days=365)

    def clean_valid_until(self) -> dt.date:
        day = self.cleaned_data["valid_until"]
        today = timezone.localdate()
        if day < today:
            raise ValidationError(_("The end date cannot be in the past."))
        if day > today + dt.timedelta(days=365 * MAX_AUTHORIZATION_YEARS):
            raise ValidationError(_("At most %d years ahead; renew it later instead.") % MAX_AUTHORIZATION_YEARS)
        return day

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        if data["consent_basis"] == Authorization.ConsentBasis.LEGAL_DOCUMENT and not data["consent_reference"].strip():
            self.add_error("consent_reference", _("A legal document basis needs the document's reference."))
            return data
        if data["elder"].clinic_id != data["guardian"].clinic_id:
            raise ValidationError(_("The guardian and the elder must be registered at the same clinic."))
        try:
            services.authorization_check_request(
                actor=self.actor,
                guardian=data["guardian"],
                elder=data["elder"],
                consent_basis=data["consent_basis"],
                consent_reference=data["consent_reference"],
                valid_until=end_of_day_after(data["valid_until"]),
            )
        except services.ServiceError as exc:
            raise ValidationError(str(exc)) from exc
        return data


class AuthorizationEndForm(forms.Form):
    requested_by = forms.ChoiceField(
        label=_("Whose request is it?"), choices=Authorization.EndRequestedBy.choices, widget=forms.RadioSelect
    )
    reason = forms.CharField(label=_("Reason"), max_length=300)


class AuthorizationRenewForm(forms.Form):
    valid_until = forms.DateField(label=_("New end date (inclusive)"), widget=DATE_INPUT)

    def clean_valid_until(self) -> dt.date:
        day = self.cleaned_data["valid_until"]
        today = timezone.localdate()
        if day < today:
            raise ValidationError(_("The new end date must be today or later."))
        if day > today + dt.timedelta(days=365 * MAX_AUTHORIZATION_YEARS):
            raise ValidationError(_("At most %d years ahead.") % MAX_AUTHORIZATION_YEARS)
        return day
