"""Registering elders and guardians in person; the guardian's one-time set-password link."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from guardians import crypto, id_numbers
from guardians.models import IdentityCheck, Person, User
from lookups.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def _form(clinic, **overrides):
    number = overrides.pop("id_number", None) or factories.valid_id_number()
    _, birth = id_numbers.validate(number)
    data = {
        "clinic": clinic.pk,
        "full_name": "Sun Meiling",
        "id_number": number,
        "birth_date": birth.isoformat(),
        "document_type": "resident_id_card",
        "document_note": "card valid to 2030",
        "phone": "138 0000 0000",
        "notify_email": "sun@example.org",
    }
    data.update(overrides)
    return data


def test_register_an_elder(staff_client, staff, clinic):
    data = _form(clinic)
    response = staff_client.post(reverse("staff:register_elder"), data)
    person = Person.objects.get(full_name="Sun Meiling")
    assert response.status_code == 302 and response.url == reverse("staff:person", args=[person.public_id])
    assert person.is_elder and not person.is_guardian and person.user_id is None
    assert person.id_number_hash == crypto.keyed_hash(data["id_number"])
    assert person.birth_date == dt.date.fromisoformat(data["birth_date"])
    assert person.id_number_masked.count("*") == 8
    check = IdentityCheck.objects.get(person=person)
    assert (check.document_type, check.checked_by, check.note) == ("resident_id_card", staff, "card valid to 2030")
    actions = set(AuditEvent.objects.filter(subject=person).values_list("action", flat=True))
    assert {"person.registered", "identity.checked"} <= actions
    # the full ID number is never written in clear anywhere in the audit log
    assert not AuditEvent.objects.filter(details__icontains=data["id_number"]).exists()


def test_bad_checksum_is_a_field_error_and_keeps_the_input(staff_client, clinic):
    data = _form(clinic)
    data["id_number"] = data["id_number"][:17] + ("0" if data["id_number"][17] != "0" else "1")
    response = staff_client.post(reverse("staff:register_elder"), data)
    assert response.status_code == 400
    form = response.context["form"]
    assert "check digit" in form.errors["id_number"][0]
    page = response.content.decode()
    assert 'value="Sun Meiling"' in page and data["id_number"] in page and "sun@example.org" in page
    assert not Person.objects.filter(full_name="Sun Meiling").exists()


def test_birth_date_must_match_the_id_number(staff_client, clinic):
    data = _form(clinic, birth_date="1930-02-03")
    response = staff_client.post(reverse("staff:register_elder"), data)
    assert response.status_code == 400
    assert "does not match" in response.context["form"].errors["birth_date"][0]
    assert not Person.objects.filter(full_name="Sun Meiling").exists()


def test_duplicate_in_own_clinic_links_to_the_record(staff_client, elder, clinic):
    number = id_numbers_of(elder)
    response = staff_client.post(reverse("staff:register_elder"), _form(clinic, id_number=number))
    assert response.status_code == 400
    assert reverse("staff:person", args=[elder.public_id]) in response.content.decode()


def test_duplicate_elsewhere_reveals_nothing(other_client, other_clinic, elder):
    response = other_client.post(reverse("staff:register_elder"), _form(other_clinic, id_number=id_numbers_of(elder)))
    assert response.status_code == 400
    page = response.content.decode()
    assert "another clinic" in page
    assert elder.full_name not in page and str(elder.public_id) not in page and elder.id_number_masked not in page


def id_numbers_of(person: Person) -> str:
    return crypto.decrypt(person.id_number_ciphertext).decode()


def test_register_a_guardian_creates_a_login_and_shows_a_set_password_link(staff_client, staff, clinic):
    response = staff_client.post(reverse("staff:register_guardian"), _form(clinic, username="sun.meiling"))
    assert response.status_code == 200
    person = Person.objects.get(full_name="Sun Meiling")
    assert person.is_guardian and not person.is_elder
    user = person.user
    assert user.username == "sun.meiling" and not user.has_usable_password()
    link = response.context["link"]
    assert link.startswith("http://testserver/accounts/set-password/")
    assert link in response.content.decode()
    assert IdentityCheck.objects.filter(person=person, checked_by=staff).exists()
    assert AuditEvent.objects.filter(action="account.set_password_link_issued", subject=person).exists()

    # The guardian opens the link once and chooses a password.
    guardian = Client()
    step = guardian.get(link)
    assert step.status_code == 302  # token moved into the session, out of the URL
    form_page = guardian.get(step.url)
    assert form_page.context["validlink"]
    done = guardian.post(
        step.url, {"new_password1": "a long family passphrase", "new_password2": "a long family passphrase"}
    )
    assert done.status_code == 302 and done.url == reverse("accounts:set_password_done")
    user.refresh_from_db()
    assert user.check_password("a long family passphrase")
    assert AuditEvent.objects.filter(action="account.password_set", subject=person).exists()
    # The link is one-time: it no longer works.
    again = Client().get(link)
    assert again.status_code == 200 and not again.context["validlink"]


def test_guardian_also_elder(staff_client, clinic):
    staff_client.post(reverse("staff:register_guardian"), _form(clinic, username="both.roles", also_elder="on"))
    person = Person.objects.get(user__username="both.roles")
    assert person.is_guardian and person.is_elder


def test_taken_username_keeps_the_form_and_writes_nothing(staff_client, clinic, guardian):
    count = Person.objects.count()
    data = _form(clinic, username=guardian.user.username.upper())
    response = staff_client.post(reverse("staff:register_guardian"), data)
    assert response.status_code == 400
    assert "taken" in response.context["form"].errors["username"][0]
    assert Person.objects.count() == count
    assert data["id_number"] in response.content.decode()


def test_username_taken_at_the_last_moment_rolls_everything_back(staff, clinic, guardian):
    from guardians import services
    from lookups.audit import Actor

    count, checks = Person.objects.count(), IdentityCheck.objects.count()
    with pytest.raises(services.ServiceError):
        services.person_register_in_person(
            actor=Actor.for_user(staff),
            clinic=clinic,
            full_name="Race Loser",
            id_number=factories.valid_id_number(),
            birth_date=None,
            document_type="passport",
            is_guardian=True,
            username=guardian.user.username,
        )
    assert (Person.objects.count(), IdentityCheck.objects.count()) == (count, checks)


def test_create_a_login_for_a_registered_elder(staff_client, elder, guardian):
    url = reverse("staff:account_create", args=[elder.public_id])
    taken = staff_client.post(url, {"username": guardian.user.username}, follow=True)
    assert "taken" in taken.content.decode()
    response = staff_client.post(url, {"username": "zhang.xiuying"})
    assert response.status_code == 200 and "/accounts/set-password/" in response.context["link"]
    elder.refresh_from_db()
    assert elder.user.username == "zhang.xiuying" and not elder.user.has_usable_password()
    again = staff_client.post(url, {"username": "second.login"}, follow=True)
    assert "already has a login" in again.content.decode()


def test_reissued_link_for_a_forgotten_password(staff_client, guardian):
    response = staff_client.post(reverse("staff:password_link", args=[guardian.public_id]))
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action="account.set_password_link_issued", outcome="reset").exists()
    assert User.objects.get(pk=guardian.user_id).has_usable_password()


def test_person_page_view_is_audited(staff_client, staff, elder):
    staff_client.get(reverse("staff:person", args=[elder.public_id]))
    assert AuditEvent.objects.filter(action="person.viewed", subject=elder, actor=staff).count() == 1


def test_people_search_by_name_within_the_clinic(staff_client, staff, clinic, elder, guardian):
    page = staff_client.get(reverse("staff:people"), {"q": "zhang"}).content.decode()
    assert elder.full_name in page and guardian.full_name not in page
    page = staff_client.get(reverse("staff:people"), {"role": "guardian"}).content.decode()
    assert guardian.full_name in page and elder.full_name not in page
