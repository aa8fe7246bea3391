"""Role × action × own/other clinic: the rule (permissions.py), the querysets and the pages agree."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from guardians import permissions
from guardians.models import StaffMembership
from guardians.permissions import ACTION_ROLES, StaffAction
from tests import factories
from tests.helpers import image_bytes, verified_client

pytestmark = pytest.mark.django_db
ROLES = [StaffMembership.Role.STAFF, StaffMembership.Role.MANAGER, StaffMembership.Role.AUDITOR]
ACTIONS = list(ACTION_ROLES)
EXPECTED_ROLES = {
    StaffAction.VIEW: {"staff", "manager", "auditor"},
    StaffAction.REGISTER: {"staff", "manager"},
    StaffAction.ENROLL: {"staff", "manager"},
    StaffAction.MANAGE_AUTHORIZATIONS: {"staff", "manager"},
    StaffAction.RECORD_RESULTS: {"staff", "manager"},
    StaffAction.VIEW_SAMPLING_PHOTO: {"staff", "manager"},
    StaffAction.READ_RECORDS: {"staff", "manager", "auditor"},
    StaffAction.READ_AUDIT: {"manager", "auditor"},
}
# Actions with a workspace page (the oversight reads live in the admin).
DESK_ACTIONS = [a for a in ACTIONS if a not in (StaffAction.READ_RECORDS, StaffAction.READ_AUDIT)]


def test_the_rule_table_is_the_documented_one():
    assert {action: set(roles) for action, roles in ACTION_ROLES.items()} == EXPECTED_ROLES
    # The one superuser rule: oversight reads everywhere, nothing at the desk without a membership.
    assert {StaffAction.READ_RECORDS, StaffAction.READ_AUDIT} == permissions.SUPERUSER_ACTIONS


@pytest.fixture
def world(staff, manager, clinic, other_clinic, guardian, elder, authorization):
    photo = SimpleUploadedFile("p.png", _png(), content_type="image/png")
    result = factories.make_result(staff, elder, sampling_photo=photo)
    return {
        "clinic": clinic,
        "other": other_clinic,
        "elder": elder,
        "guardian": guardian,
        "auth": authorization,
        "result": result,
    }


def _png() -> bytes:
    return image_bytes("PNG", (8, 8), "white")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("where", ["own", "other"])
def test_rule_and_querysets_agree(world, role, action, where):
    clinic = world["clinic"] if where == "own" else world["other"]
    user = factories.make_staff(clinic, role=role)
    allowed = where == "own" and role in EXPECTED_ROLES[action]
    assert permissions.staff_can(user, action, world["clinic"]) is allowed
    assert permissions.staff_people(user, action).filter(pk=world["elder"].pk).exists() is allowed
    assert permissions.staff_authorizations(user, action).filter(pk=world["auth"].pk).exists() is allowed
    assert permissions.staff_results(user, action).filter(pk=world["result"].pk).exists() is allowed
    assert permissions.staff_clinics(user, action).filter(pk=world["clinic"].pk).exists() is allowed
    assert (action in permissions.staff_actions_at(user, world["clinic"])) is allowed
    ids = permissions.clinic_ids_where(user, action)
    assert ids is not None and (world["clinic"].pk in ids) is allowed


@pytest.mark.parametrize("member", [None, "staff", "auditor"])
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("where", ["own", "other"])
def test_superuser_rule(world, member, action, where):
    """A superuser gets SUPERUSER_ACTIONS at every clinic; anything else only through a membership."""
    if member is None:
        user = factories.UserFactory(is_staff=True, is_superuser=True)
    else:
        user = factories.make_staff(world["clinic"], role=member, is_superuser=True)
    by_membership = member is not None and where == "own" and member in EXPECTED_ROLES[action]
    allowed = action in permissions.SUPERUSER_ACTIONS or by_membership
    clinic = world["clinic"] if where == "own" else world["other"]
    assert permissions.staff_can(user, action, clinic) is allowed
    assert (action in permissions.staff_actions_at(user, clinic)) is allowed
    assert permissions.staff_clinics(user, action).filter(pk=clinic.pk).exists() is allowed
    ids = permissions.clinic_ids_where(user, action)
    assert (ids is None) is (action in permissions.SUPERUSER_ACTIONS)
    if where == "own":
        assert permissions.staff_people(user, action).filter(pk=world["elder"].pk).exists() is allowed
        assert permissions.staff_authorizations(user, action).filter(pk=world["auth"].pk).exists() is allowed


def test_superuser_without_membership_has_no_workspace_anywhere(world, client):
    from lookups.audit import Actor

    user = factories.UserFactory(is_staff=True, is_superuser=True)
    assert permissions.has_staff_workspace(user) is False
    client.force_login(user)
    assert client.get(reverse("lookups:dashboard")).context["is_staff_user"] is False
    from guardians import services

    with pytest.raises(services.NotPermitted):
        services.backup_codes_issue(actor=Actor.for_user(user), person=world["guardian"])
    with pytest.raises(services.NotPermitted):
        services.authorization_suspend(
            actor=Actor.for_user(user), authorization_id=world["auth"].pk, reason="x", requested_by="clinic"
        )


def test_inactive_and_anonymous_users_may_do_nothing(world):
    from django.contrib.auth.models import AnonymousUser

    user = factories.make_staff(world["clinic"], role="manager", is_superuser=True)
    user.is_active = False
    for action in ACTIONS:
        assert permissions.staff_can(user, action, world["clinic"]) is False
        assert permissions.staff_can(AnonymousUser(), action, world["clinic"]) is False
        assert permissions.staff_can(None, action, world["clinic"]) is False


def _request(client, action, w):
    """One representative page per action; returns the response."""
    elder, guardian = w["elder"], w["guardian"]
    if action == StaffAction.VIEW:
        return client.get(reverse("staff:person", args=[elder.public_id]))
    if action == StaffAction.REGISTER:
        return client.post(reverse("staff:password_link", args=[guardian.public_id]))
    if action == StaffAction.ENROLL:
        return client.get(reverse("staff:otp_enroll", args=[guardian.public_id]))
    if action == StaffAction.MANAGE_AUTHORIZATIONS:
        return client.post(
            reverse("staff:authorization_suspend", args=[w["auth"].pk]),
            {"suspend-requested_by": "clinic", "suspend-reason": "Matrix test"},
        )
    if action == StaffAction.RECORD_RESULTS:
        return client.get(reverse("staff:result_new") + f"?elder={elder.public_id}")
    if action == StaffAction.VIEW_SAMPLING_PHOTO:
        return client.post(reverse("staff:result_photo", args=[w["result"].pk]), {"reason": "Matrix test"})
    raise AssertionError(action)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", DESK_ACTIONS)
@pytest.mark.parametrize("where", ["own", "other"])
def test_pages_follow_the_rule(world, role, action, where):
    clinic = world["clinic"] if where == "own" else world["other"]
    client = verified_client(factories.make_staff(clinic, role=role))
    response = _request(client, action, world)
    if role not in EXPECTED_ROLES[action]:
        assert response.status_code == 403  # the role may not do this anywhere
    elif where == "other":
        assert response.status_code == 404  # may do it, but not for another clinic's records
    else:
        assert response.status_code in (200, 302), response.status_code


@pytest.mark.parametrize("role", ROLES)
def test_services_refuse_auditors_and_other_clinics(world, role, other_clinic):
    from guardians import services
    from lookups import services as lookup_services
    from lookups.audit import Actor

    for where in ("own", "other"):
        user = factories.make_staff(world["clinic"] if where == "own" else other_clinic, role=role)
        actor = Actor.for_user(user)
        allowed = where == "own" and role != "auditor"
        calls = [
            (services.identity_check_record, {"person": world["elder"], "document_type": "passport"}),
            (services.backup_codes_issue, {"person": world["guardian"]}),
            (services.face_consent_record, {"person": world["guardian"], "consent_text": "ok", "given_by": "person"}),
        ]
        for call, kwargs in calls:
            if allowed:
                call(actor=actor, **kwargs)
            else:
                with pytest.raises(services.NotPermitted):
                    call(actor=actor, **kwargs)
        if allowed:
            factories.make_result(user, world["elder"])
        else:
            with pytest.raises(lookup_services.LookupRefused):
                factories.make_result(user, world["elder"])
