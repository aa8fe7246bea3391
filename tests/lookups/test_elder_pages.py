"""The elder's own pages: who looked me up, my guardians, removal requests; preferences."""

import pytest
from django.urls import reverse

from guardians import services as guardian_services
from guardians.models import Authorization
from lookups import selectors
from lookups.audit import Actor
from lookups.models import AuditEvent
from tests import factories
from tests.helpers import pass_otp, start_lookup

pytestmark = pytest.mark.django_db


@pytest.fixture
def elder_with_login(staff, clinic):
    return factories.make_person(staff, clinic, "Zhao Min", elder=True, login=True)


@pytest.fixture
def elder_auth(staff, manager, guardian, elder_with_login):
    return factories.make_active_authorization(staff, manager, guardian, elder_with_login)


def test_history_names_the_guardian_and_how_it_ended_without_ips(
    client, guardian_client, elder_with_login, elder_auth, guardian_device
):
    lookup = start_lookup(guardian_client, elder_with_login)
    pass_otp(guardian_client, lookup, guardian_device)
    rows = selectors.lookup_history_of_elder(elder_with_login)
    assert [(r.who, r.by_self, r.saw_results) for r in rows] == [("Li Wei", False, False)]
    assert rows[0].relationship == "Son or daughter"
    assert rows[0].outcome == "Started, results not seen"

    client.force_login(elder_with_login.user)
    page = client.get(reverse("lookups:looked_me_up")).content.decode()
    assert "Li Wei" in page and "Started, results not seen" in page
    assert AuditEvent.objects.filter(subject=elder_with_login, ip="127.0.0.1").exists()
    assert "127.0.0.1" not in page


def test_history_selector_makes_two_queries(
    elder_with_login, elder_auth, guardian_client, guardian_device, django_assert_num_queries
):
    for _ in range(3):
        start_lookup(guardian_client, elder_with_login)
    with django_assert_num_queries(2):
        rows = selectors.lookup_history_of_elder(elder_with_login)
    assert len(rows) == 3


def test_elder_pages_answer_404_to_guardians(guardian_client):
    for name in ("lookups:me", "lookups:looked_me_up", "lookups:my_guardians"):
        assert guardian_client.get(reverse(name)).status_code == 404


def test_my_guardians_lists_only_my_current_authorizations(
    client, staff, manager, clinic, guardian, elder, elder_with_login, elder_auth
):
    factories.make_active_authorization(staff, manager, guardian, elder)  # someone else's elder
    client.force_login(elder_with_login.user)
    page = client.get(reverse("lookups:my_guardians")).content.decode()
    assert page.count("Ask to remove") == 1 + page.count("“Ask to remove”")
    assert "Li Wei" in page and "Zhang Xiuying" not in page


def test_removal_request_is_audited_once_and_changes_nothing_else(client, elder_with_login, elder_auth):
    client.force_login(elder_with_login.user)
    url = reverse("lookups:request_removal", args=[elder_auth.pk])
    assert client.post(url).status_code == 302
    assert client.post(url).status_code == 302
    events = AuditEvent.objects.filter(action="authorization.removal_requested")
    assert events.count() == 1
    event = events.get()
    assert event.actor_id == elder_with_login.user_id and event.clinic_id == elder_auth.clinic_id
    assert event.target_id == str(elder_auth.pk) and event.subject_id == elder_with_login.pk
    elder_auth.refresh_from_db()
    assert elder_auth.status == Authorization.Status.ACTIVE
    page = client.get(reverse("lookups:my_guardians")).content.decode()
    assert "You asked the clinic to remove this guardian" in page


def test_removal_request_of_someone_elses_authorization_is_404(client, guardian, authorization, elder_with_login):
    client.force_login(elder_with_login.user)
    response = client.post(reverse("lookups:request_removal", args=[authorization.pk]))
    assert response.status_code == 404
    with pytest.raises(guardian_services.NotPermitted):
        guardian_services.authorization_removal_request(
            actor=Actor.for_user(guardian.user), authorization_id=authorization.pk
        )
    assert not AuditEvent.objects.filter(action="authorization.removal_requested").exists()


def test_removal_request_of_an_ended_authorization_is_refused(client, staff, elder_with_login, elder_auth):
    guardian_services.authorization_revoke(actor=Actor.for_user(staff), authorization_id=elder_auth.pk, reason="x")
    with pytest.raises(guardian_services.IllegalState):
        guardian_services.authorization_removal_request(
            actor=Actor.for_user(elder_with_login.user), authorization_id=elder_auth.pk
        )


def test_large_text_toggle_is_saved_and_audited(guardian_client, guardian):
    response = guardian_client.post(reverse("lookups:large_text"), {"large_text": "1", "next": "/lookups/"})
    assert response.status_code == 302 and response.url == "/lookups/"
    guardian.user.refresh_from_db()
    assert guardian.user.large_text is True
    assert 'class="large-text"' in guardian_client.get(reverse("lookups:dashboard")).content.decode()
    assert AuditEvent.objects.filter(action="preferences.changed", details__large_text=True).count() == 1


def test_large_text_toggle_refuses_foreign_redirects(guardian_client):
    response = guardian_client.post(reverse("lookups:large_text"), {"large_text": "1", "next": "https://evil.example/"})
    assert response.url == reverse("home")


def test_anonymous_large_text_lives_in_a_cookie(client):
    client.post(reverse("lookups:large_text"), {"large_text": "1"})
    assert 'class="large-text"' in client.get(reverse("login")).content.decode()


def test_language_choice_is_saved_and_applied_at_the_next_sign_in(guardian_client, guardian):
    from django.test import Client

    client = Client()
    response = guardian_client.post(reverse("lookups:language"), {"language": "zh-hans", "next": "/lookups/"})
    assert response.status_code == 302
    guardian.user.refresh_from_db()
    assert guardian.user.preferred_language == "zh-hans"
    response = client.post(reverse("login"), {"username": guardian.user.username, "password": "correct horse battery"})
    assert response.cookies["django_language"].value == "zh-hans"
    assert "查询谁的结果" in client.get(reverse("lookups:dashboard")).content.decode()


def test_preferences_only_by_the_user_and_known_languages(guardian, staff):
    with pytest.raises(guardian_services.NotPermitted):
        guardian_services.user_preferences_update(actor=Actor.for_user(staff), user=guardian.user, large_text=True)
    with pytest.raises(guardian_services.ServiceError):
        guardian_services.user_preferences_update(
            actor=Actor.for_user(guardian.user), user=guardian.user, preferred_language="xx"
        )
