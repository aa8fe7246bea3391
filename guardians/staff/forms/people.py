"""Registration of elders and guardians, login accounts, the name search."""

from __future__ import annotations

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from guardians import id_numbers, permissions, phones, services
from guardians.models import Clinic, IdentityCheck, Person, User

from .common import DATE_INPUT, A, model_choice_field

# --- registration -------------------------------------------------------------------------


class PersonRegisterForm(forms.Form):
    """Register an elder or a guardian after checking their identity document in person."""

    clinic: forms.ModelChoiceField[Clinic] = forms.ModelChoiceField(queryset=None, label=_("Clinic"), empty_label=None)
    full_name = forms.CharField(label=_("Full name (as on the document)"), max_length=200)
    id_number = forms.CharField(
        label=_("Resident ID number (18 characters)"),
        max_length=24,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "inputmode": "text"}),
    )
    birth_date = forms.DateField(
        label=_("Date of birth (as on the document)"),
        widget=DATE_INPUT,
        help_text=_("Checked against the date inside the ID number."),
    )
    document_type = forms.ChoiceField(
        label=_("Identity document checked in person"),
        choices=IdentityCheck.DocumentType.choices,
        initial=IdentityCheck.DocumentType.RESIDENT_ID_CARD,
        widget=forms.RadioSelect,
    )
    document_note = forms.CharField(
        label=_("Note on the document (optional)"),
        max_length=200,
        required=False,
        help_text=_("For example: expiry date, or who brought it. Do not type the document number here."),
    )
    phone = forms.CharField(
        label=_("Mobile phone"),
        max_length=40,
        required=False,
        help_text=_("Mainland numbers without +86; other countries with their code."),
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )
    notify_email = forms.EmailField(
        label=_("Contact for notifications (e-mail)"),
        required=False,
        help_text=_("Where we tell the person that their results were looked up."),
    )

    role = "elder"

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.duplicate: Person | None = None
        self.duplicate_visible = False
        clinics = permissions.staff_clinics(user, A.REGISTER).order_by("name")
        model_choice_field(self, "clinic").queryset = clinics
        clinic_list = list(clinics)
        if len(clinic_list) == 1:
            self.fields["clinic"].initial = clinic_list[0].pk

    def clean_id_number(self) -> str:
        try:
            number, _birth = id_numbers.validate(self.cleaned_data["id_number"])
        except id_numbers.InvalidIdNumber as exc:
            raise ValidationError(str(exc)) from exc
        try:
            services.person_check_not_registered(id_number=number)
        except services.DuplicatePerson as exc:
            self.duplicate = exc.existing
            self.duplicate_visible = permissions.staff_people(self.user, A.VIEW).filter(pk=exc.existing.pk).exists()
            if self.duplicate_visible:
                raise ValidationError(
                    _("This person is already registered at your clinic (see the link below).")
                ) from exc
            raise ValidationError(
                _("A person with this ID number is already registered at another clinic. Ask that clinic to help.")
            ) from exc
        return number

    def clean_phone(self) -> str:
        try:
            return phones.normalize(self.cleaned_data.get("phone", ""))
        except phones.InvalidPhoneNumber as exc:
            raise ValidationError(phones.INVALID_MESSAGE, code="invalid_phone") from exc

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("id_number") and data.get("birth_date"):
            try:
                services.id_number_check_birth_date(id_number=data["id_number"], birth_date=data["birth_date"])
            except services.ServiceError as exc:
                self.add_error("birth_date", str(exc))
        return data


class ElderRegisterForm(PersonRegisterForm):
    role = "elder"


class GuardianRegisterForm(PersonRegisterForm):
    role = "guardian"
    username = forms.CharField(
        label=_("Login name for the guardian"),
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text=_("Letters, digits and . _ - only. The guardian sets a password through a one-time link."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )
    also_elder = forms.BooleanField(
        label=_("This person is also an elder whose own results are recorded here"), required=False
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError(_("This login name is taken. Please choose another."))
        return username


class AccountCreateForm(forms.Form):
    username = forms.CharField(
        label=_("Login name"),
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none", "spellcheck": "false"}),
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError(_("This login name is taken. Please choose another."))
        return username


class SearchForm(forms.Form):
    q = forms.CharField(label=_("Search by name"), max_length=100, required=False)
