"""Authorizations at the desk: register (pending), second-person approval, revoke, suspend, renew."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from guardians import services
from guardians.models import Authorization
from lookups.audit import Actor
from lookups.models import AuditEvent, LookupRequest
from tests import factories
from tests.helpers import image_bytes, pass_otp, start_lookup, submit_face, verified_client

pytestmark = pytest.mark.django_db
S = Authorization.Status


def _new_url(elder, guardian):
    return reverse("staff:authorization_new") + f"?elder={elder.public_id}&guardian={guardian.public_id}"


def _form(elder, guardian, **overrides):
    data = {
        "elder": str(elder.public_id),
        "guardian": str(guardian.public_id),
        "relationship": "child",
        "scope": "test_results",
        "valid_until": (timezone.localdate() + dt.timedelta(days=365)).isoformat(),
        "consent_basis": "elder_present",
        "consent_reference": "",
    }
    data.update(overrides)
    return data


def _pending(staff, guardian, elder) -> Authorization:
    return services.authorization_create(
        actor=Actor.for_user(staff), guardian=guardian, elder=elder, relationship="child", consent_basis="elder_present"
    )


def test_pick_then_register_pending_with_a_12_month_default(staff_client, staff, elder, guardian):
    picker = staff_client.get(reverse("staff:authorization_new"), {"elder": elder.public_id, "q": "li"})
    assert picker.status_code == 200 and guardian.full_name in picker.content.decode()
    form_page = staff_client.get(_new_url(elder, guardian))
    default_day = form_page.context["form"]["valid_until"].value()
    assert default_day == timezone.localdate() + dt.timedelta(days=365)
    response = staff_client.post(_new_url(elder, guardian), _form(elder, guardian))
    authorization = Authorization.objects.get()
    assert response.status_code == 302 and response.url == reverse("staff:authorization", args=[authorization.pk])
    assert authorization.status == S.PENDING and authorization.registered_by == staff
    assert timezone.localtime(authorization.valid_until).date() == default_day + dt.timedelta(days=1)
    assert AuditEvent.objects.filter(action="authorization.created", outcome="pending").exists()


def test_end_date_is_required_and_bounded(staff_client, elder, guardian):
    response = staff_client.post(_new_url(elder, guardian), _form(elder, guardian, valid_until=""))
    assert response.status_code == 400 and "valid_until" in response.context["form"].errors
    far = (timezone.localdate() + dt.timedelta(days=365 * 6)).isoformat()
    response = staff_client.post(_new_url(elder, guardian), _form(elder, guardian, valid_until=far))
    assert response.status_code == 400 and "valid_until" in response.context["form"].errors
    assert not Authorization.objects.exists()


def test_legal_document_needs_a_reference(staff_client, elder, guardian):
    data = _form(elder, guardian, consent_basis="legal_document")
    response = staff_client.post(_new_url(elder, guardian), data)
    assert response.status_code == 400
    assert "reference" in response.context["form"].errors["consent_reference"][0]
    data["consent_reference"] = "Court order (2026) Jing 0101 Min Te 12"
    assert staff_client.post(_new_url(elder, guardian), data).status_code == 302
    assert Authorization.objects.get().consent_reference == data["consent_reference"]


def test_registrar_cannot_approve_their_own(staff_client, staff, elder, guardian):
    authorization = _pending(staff, guardian, elder)
    page = staff_client.get(reverse("staff:authorization", args=[authorization.pk])).content.decode()
    assert "A second staff member must approve it" in page
    assert reverse("staff:authorization_approve", args=[authorization.pk]) not in page
    response = staff_client.post(reverse("staff:authorization_approve", args=[authorization.pk]), follow=True)
    assert "you registered this authorization" in response.content.decode()
    authorization.refresh_from_db()
    assert authorization.status == S.PENDING and authorization.approved_by is None


def test_a_second_staff_member_approves(staff, manager_client, manager, elder, guardian):
    authorization = _pending(staff, guardian, elder)
    queue = manager_client.get(reverse("staff:authorizations"), {"view": "pending"}).content.decode()
    assert elder.full_name in queue
    manager_client.post(reverse("staff:authorization_approve", args=[authorization.pk]))
    authorization.refresh_from_db()
    assert authorization.status == S.ACTIVE and authorization.approved_by == manager
    assert elder.full_name not in manager_client.get(reverse("staff:authorizations")).content.decode()


@pytest.mark.parametrize("who", ["elder", "guardian", "clinic"])
def test_revoke_records_whose_request_it_was(staff_client, staff, authorization, who):
    response = staff_client.post(
        reverse("staff:authorization_revoke", args=[authorization.pk]),
        {"revoke-requested_by": who, "revoke-reason": "Family decision"},
    )
    assert response.status_code == 302
    authorization.refresh_from_db()
    assert (authorization.status, authorization.end_requested_by, authorization.ended_by) == (S.REVOKED, who, staff)
    event = AuditEvent.objects.get(action="authorization.revoked")
    assert event.details == {
        "reason": "Family decision",
        "requested_by": who,
        "old_status": "active",
        "new_status": "revoked",
    }


def test_revoke_without_requester_keeps_the_reason_typed(staff_client, authorization):
    response = staff_client.post(
        reverse("staff:authorization_revoke", args=[authorization.pk]), {"revoke-reason": "Typed reason"}
    )
    assert response.status_code == 400
    assert "requested_by" in response.context["revoke_form"].errors
    assert 'value="Typed reason"' in response.content.decode()
    authorization.refresh_from_db()
    assert authorization.status == S.ACTIVE


def test_suspend_then_renew(staff_client, authorization):
    staff_client.post(
        reverse("staff:authorization_suspend", args=[authorization.pk]),
        {"suspend-requested_by": "guardian", "suspend-reason": "Travelling abroad"},
    )
    authorization.refresh_from_db()
    assert authorization.status == S.SUSPENDED
    new_end = timezone.localdate() + dt.timedelta(days=200)
    staff_client.post(reverse("staff:authorization_renew", args=[authorization.pk]), {"renew-valid_until": new_end})
    authorization.refresh_from_db()
    assert authorization.status == S.ACTIVE
    assert timezone.localtime(authorization.valid_until).date() == new_end + dt.timedelta(days=1)


def test_renew_refuses_a_past_date(staff_client, authorization):
    past = (timezone.localdate() - dt.timedelta(days=1)).isoformat()
    response = staff_client.post(
        reverse("staff:authorization_renew", args=[authorization.pk]), {"renew-valid_until": past}
    )
    assert response.status_code == 400


def test_expiring_list_shows_the_next_30_days_only(staff, manager, staff_client, clinic, elder):
    soon_guardian = factories.make_person(staff, clinic, "Soon Ending", guardian=True)
    later_guardian = factories.make_person(staff, clinic, "Much Later", guardian=True)
    now = timezone.now()
    factories.make_active_authorization(staff, manager, soon_guardian, elder, valid_until=now + dt.timedelta(days=10))
    factories.make_active_authorization(staff, manager, later_guardian, elder, valid_until=now + dt.timedelta(days=40))
    page = staff_client.get(reverse("staff:authorizations"), {"view": "expiring"}).content.decode()
    assert "Soon Ending" in page and "Much Later" not in page
    home = staff_client.get(reverse("staff:home"))
    assert home.context["counts"]["expiring"] == 1


def _jpeg() -> bytes:
    return image_bytes("JPEG", (64, 64), "gray")


def test_revocation_takes_effect_on_an_in_flight_lookup(
    staff_client, guardian_client, authorization, guardian_device, results
):
    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    staff_client.post(
        reverse("staff:authorization_revoke", args=[authorization.pk]),
        {"revoke-requested_by": "elder", "revoke-reason": "Elder changed her mind"},
    )
    response = submit_face(guardian_client, lookup, _jpeg())
    assert response.status_code == 302
    lookup.refresh_from_db()
    assert lookup.state == LookupRequest.State.DENIED and lookup.end_reason == "authorization_inactive"
    assert not lookup.face_checks.exists()


def test_suspension_hides_results_already_granted(staff_client, guardian_client, authorization, results):
    from lookups import services as lookup_services

    lookup = start_lookup(guardian_client, authorization.elder)
    now = timezone.now()
    LookupRequest.objects.filter(pk=lookup.pk).update(
        state=LookupRequest.State.GRANTED, granted_at=now, grant_expires_at=now + dt.timedelta(minutes=10)
    )
    assert guardian_client.get(reverse("lookups:results", args=[lookup.pk])).status_code == 200
    staff_client.post(
        reverse("staff:authorization_suspend", args=[authorization.pk]),
        {"suspend-requested_by": "clinic", "suspend-reason": "Dispute in the family"},
    )
    response = guardian_client.get(reverse("lookups:results", args=[lookup.pk]), follow=True)
    assert results[0].lab not in response.content.decode()
    with pytest.raises(lookup_services.LookupRefused):
        lookup_services.results_view(
            actor=Actor.for_user(authorization.guardian.user),
            lookup_id=lookup.pk,
            session_binding=lookup.session_binding,
        )


def test_auditor_sees_but_cannot_act(auditor, authorization):
    client = verified_client(auditor)
    page = client.get(reverse("staff:authorization", args=[authorization.pk]))
    assert page.status_code == 200
    assert reverse("staff:authorization_revoke", args=[authorization.pk]) not in page.content.decode()
    assert client.post(reverse("staff:authorization_revoke", args=[authorization.pk])).status_code == 403


def test_elder_removal_requests_reach_the_desk(staff_client, clinic, staff, manager):
    elder = factories.make_person(staff, clinic, "Asking Elder", elder=True, login=True)
    guardian = factories.make_person(staff, clinic, "Unwanted Guardian", guardian=True)
    kept = factories.make_person(staff, clinic, "Kept Guardian", guardian=True)
    unwanted = factories.make_active_authorization(staff, manager, guardian, elder)
    factories.make_active_authorization(staff, manager, kept, elder)
    assert services.authorization_removal_request(
        actor=Actor.for_user(elder.user), authorization_id=unwanted.pk, note="Please remove"
    )
    home = staff_client.get(reverse("staff:home")).content.decode()
    assert "1 elder asked to remove a guardian" in home
    listing = staff_client.get(reverse("staff:authorizations"), {"view": "removal"}).content.decode()
    assert "Unwanted Guardian" in listing and "Kept Guardian" not in listing
    # Once revoked, the request is handled and leaves the list.
    services.authorization_revoke(actor=Actor.for_user(manager), authorization_id=unwanted.pk, reason="Elder's request")
    listing = staff_client.get(reverse("staff:authorizations"), {"view": "removal"}).content.decode()
    assert "Unwanted Guardian" not in listing
    assert "asked to remove" not in staff_client.get(reverse("staff:home")).content.decode()


def test_opening_an_authorization_is_audited(staff_client, staff, authorization):
    assert staff_client.get(reverse("staff:authorization", args=[authorization.pk])).status_code == 200
    viewed = AuditEvent.objects.get(action="authorization.viewed")
    assert (viewed.actor, viewed.subject, viewed.target_id) == (staff, authorization.elder, str(authorization.pk))
