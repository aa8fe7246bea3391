"""Phone numbers: E.164 at the desk, in the services and in the data migration."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.urls import reverse
from django.utils import translation

from guardians import phones, services
from guardians.models import Person
from lookups.audit import Actor
from tests import factories
from tests.staff.test_registration import _form


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("138 0013 8000", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("0086 13800138000", "+8613800138000"),
        ("+852 5123 4567", "+85251234567"),
        ("  ", ""),
        ("", ""),
    ],
)
def test_normalize_to_e164(raw, expected):
    assert phones.normalize(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "138 0013 800", "not a number", "010 6552 9988", "+86 999 9999 9999"])
def test_normalize_rejects_invalid_and_mainland_landlines(raw):
    with pytest.raises(phones.InvalidPhoneNumber):
        phones.normalize(raw)


def test_mask_keeps_no_more_than_prefix_and_last_four():
    assert phones.mask("+8613800138000") == "+86138****8000"
    assert "0013" not in phones.mask("+8613800138000")
    assert phones.mask("") == ""


@pytest.mark.django_db
def test_desk_registration_stores_e164(staff_client, clinic):
    response = staff_client.post(reverse("staff:register_elder"), _form(clinic, phone="138 0013 8000"))
    assert response.status_code == 302
    assert Person.objects.get(full_name="Sun Meiling").phone == "+8613800138000"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "fragment"), [("en", "Enter a valid mobile phone number"), ("zh-hans", "请输入有效的手机号码")]
)
def test_desk_registration_refuses_a_typo_with_a_clear_message(staff_client, clinic, language, fragment):
    with translation.override(language):
        response = staff_client.post(
            reverse("staff:register_elder"),
            _form(clinic, phone="138 0013 800"),
            HTTP_ACCEPT_LANGUAGE=language,
        )
    assert response.status_code == 400  # the workspace answers invalid forms with 400
    assert fragment in response.content.decode()
    assert not Person.objects.filter(full_name="Sun Meiling").exists()


@pytest.mark.django_db
def test_service_normalises_and_refuses_invalid(staff, clinic):
    actor = Actor.for_user(staff)
    person = services.person_register(
        actor=actor,
        clinic=clinic,
        full_name="Li Hua",
        id_number=factories.valid_id_number(),
        is_elder=True,
        phone="13800138000",
    )
    assert person.phone == "+8613800138000"
    with pytest.raises(services.ServiceError):
        services.person_register(
            actor=actor,
            clinic=clinic,
            full_name="Li Ming",
            id_number=factories.valid_id_number(),
            is_elder=True,
            phone="99",
        )


@pytest.mark.django_db
def test_data_migration_normalises_and_keeps_invalid(staff, clinic, capsys):
    good, bad, empty = (
        factories.make_person(staff, clinic, name, elder=True) for name in ("Ann Good", "Bo Bad", "Cy None")
    )
    Person.objects.filter(pk=good.pk).update(phone="138 0013 8000")
    Person.objects.filter(pk=bad.pk).update(phone="call the daughter")
    module = importlib.import_module("guardians.migrations.0005_normalize_phone_numbers")
    module.normalize_phones(django_apps, None)
    for person in (good, bad, empty):
        person.refresh_from_db()
    assert good.phone == "+8613800138000"
    assert bad.phone == "call the daughter"
    assert empty.phone == ""
    out = capsys.readouterr().out
    assert str(bad.pk) in out and "call the daughter" not in out and "normalised to E.164: 1" in out
