"""The workspace moved to ``guardians.staff``: every URL name, namespace and path is unchanged."""

import uuid

import pytest
from django.urls import resolve, reverse

U = uuid.UUID("12345678-1234-5678-1234-567812345678")

EXPECTED = [
    ("staff:home", (), "/staff/"),
    ("staff:login", (), "/staff/login/"),
    ("staff:logout", (), "/staff/logout/"),
    ("staff:reverify", (), "/staff/reverify/"),
    ("staff:people", (), "/staff/people/"),
    ("staff:register_elder", (), "/staff/people/register/elder/"),
    ("staff:register_guardian", (), "/staff/people/register/guardian/"),
    ("staff:person", (U,), f"/staff/people/{U}/"),
    ("staff:account_create", (U,), f"/staff/people/{U}/account/"),
    ("staff:password_link", (U,), f"/staff/people/{U}/password-link/"),
    ("staff:otp_enroll", (U,), f"/staff/people/{U}/authenticator/"),
    ("staff:backup_codes", (U,), f"/staff/people/{U}/backup-codes/"),
    ("staff:face_consent", (U,), f"/staff/people/{U}/face/consent/"),
    ("staff:face_enroll", (U,), f"/staff/people/{U}/face/"),
    ("staff:face_withdraw", (U,), f"/staff/people/{U}/face/withdraw/"),
    ("staff:authorizations", (), "/staff/authorizations/"),
    ("staff:authorization_new", (), "/staff/authorizations/new/"),
    ("staff:authorization", (7,), "/staff/authorizations/7/"),
    ("staff:authorization_approve", (7,), "/staff/authorizations/7/approve/"),
    ("staff:authorization_revoke", (7,), "/staff/authorizations/7/revoke/"),
    ("staff:authorization_suspend", (7,), "/staff/authorizations/7/suspend/"),
    ("staff:authorization_renew", (7,), "/staff/authorizations/7/renew/"),
    ("staff:results", (), "/staff/results/"),
    ("staff:result_new", (), "/staff/results/new/"),
    ("staff:results_import", (), "/staff/results/import/"),
    ("staff:results_import_confirm", (), "/staff/results/import/confirm/"),
    ("staff:results_import_status", ("0" * 32,), f"/staff/results/import/{'0' * 32}/"),
    ("staff:result_photo", (7,), "/staff/results/7/photo/"),
    ("accounts:set_password", ("MQ", "abc-def"), "/accounts/set-password/MQ/abc-def/"),
    ("accounts:set_password_done", (), "/accounts/set-password/done/"),
]


@pytest.mark.parametrize(("name", "args", "path"), EXPECTED)
def test_url_names_and_paths_are_unchanged(name, args, path):
    assert reverse(name, args=args) == path
    match = resolve(path)
    assert f"{match.namespace}:{match.url_name}" == name


def test_every_staff_pattern_is_listed():
    from guardians.staff.urls import urlpatterns

    assert {f"staff:{p.name}" for p in urlpatterns} == {n for n, _, _ in EXPECTED if n.startswith("staff:")}


def test_staff_views_live_in_the_staff_package():
    for name, _args, path in EXPECTED:
        module = resolve(path).func.__module__
        assert module.startswith(("guardians.staff.views.", "guardians.account_views")), (name, module)
