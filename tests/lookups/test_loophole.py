"""The 2020 loophole, closed: no authorization, no results, whatever the URL."""

import uuid

import pytest
from django.urls import reverse

from guardians import services as guardian_services
from lookups.audit import Actor
from lookups.models import LookupRequest
from tests import factories
from tests.helpers import pass_otp, start_lookup

pytestmark = pytest.mark.django_db


@pytest.fixture
def stranger(staff, clinic):
    """A logged-in guardian with a device but no authorization for the elder."""
    person = factories.make_person(staff, clinic, "Nosy Neighbour", guardian=True, login=True)
    guardian_services.totp_device_create(actor=Actor.system("test"), user=person.user, confirmed=True)
    return person


def test_dashboard_lists_only_authorized_elders(guardian_client, authorization, staff, clinic):
    unrelated = factories.make_person(staff, clinic, "Unrelated Elder", elder=True)
    page = guardian_client.get(reverse("lookups:dashboard")).content.decode()
    assert authorization.elder.full_name in page
    assert authorization.elder.id_number_masked in page
    assert unrelated.full_name not in page


def test_search_parameters_are_ignored(guardian_client, authorization, staff, clinic):
    unrelated = factories.make_person(staff, clinic, "Unrelated Elder", elder=True)
    page = guardian_client.get(reverse("lookups:dashboard"), {"q": "Unrelated", "id_number": "1101"}).content.decode()
    assert unrelated.full_name not in page


def test_stranger_cannot_start_a_lookup(client, stranger, elder, results):
    client.force_login(stranger.user)
    response = client.post(reverse("lookups:start", args=[elder.public_id]))
    assert response.status_code == 404
    assert not LookupRequest.objects.exists()


def test_unknown_elder_id_is_404_too(client, stranger):
    client.force_login(stranger.user)
    assert client.post(reverse("lookups:start", args=[uuid.uuid4()])).status_code == 404


@pytest.mark.parametrize("name", ["otp", "face", "wait", "status", "results", "ended"])
def test_someone_elses_lookup_is_404(client, guardian_client, authorization, stranger, name):
    lookup = start_lookup(guardian_client, authorization.elder)
    client.force_login(stranger.user)
    assert client.get(reverse(f"lookups:{name}", args=[lookup.pk])).status_code == 404
    assert client.post(reverse("lookups:cancel", args=[lookup.pk])).status_code == 404
    assert client.get(reverse(f"lookups:{name}", args=[uuid.uuid4()])).status_code == 404


def test_flow_cannot_be_entered_out_of_order(guardian_client, authorization, guardian_device, results):
    lookup = start_lookup(guardian_client, authorization.elder)
    # Results and face before the OTP: sent back to the OTP step, nothing shown, nothing queued.
    response = guardian_client.get(reverse("lookups:results", args=[lookup.pk]))
    assert response.status_code == 302 and response.url == reverse("lookups:otp", args=[lookup.pk])
    assert results[0].lab not in guardian_client.get(response.url).content.decode()
    response = guardian_client.post(reverse("lookups:face", args=[lookup.pk]), {})
    assert response.status_code == 302
    assert not lookup.face_checks.exists()
    # After the OTP, results are still refused until a face match.
    pass_otp(guardian_client, lookup, guardian_device)
    response = guardian_client.get(reverse("lookups:results", args=[lookup.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("lookups:face", args=[lookup.pk])
    assert results[0].lab not in response.content.decode()


def test_anonymous_users_are_sent_to_login(client, authorization):
    response = client.post(reverse("lookups:start", args=[authorization.elder.public_id]))
    assert response.status_code == 302 and reverse("login") in response.url


def test_pending_authorization_grants_nothing(client, staff, guardian, elder):
    guardian_services.authorization_create(
        actor=Actor.for_user(staff), guardian=guardian, elder=elder, relationship="child", consent_basis="elder_present"
    )
    client.force_login(guardian.user)
    assert client.post(reverse("lookups:start", args=[elder.public_id])).status_code == 404
