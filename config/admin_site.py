"""The Kinguard admin site, installed the documented way
(``config.apps.KinguardAdminConfig.default_site``).

``KinguardAdminSite`` is django-otp's ``OTPAdminSite`` (``has_permission`` requires an
OTP-verified session) with audited sign-ins (``lookups.oversight``) and the staff sign-in
form: one generic error for every failure before both factors passed, no device drop-down,
no password echoed back (issue 10 item 3, issue 12).
"""

from __future__ import annotations

from django.utils.translation import gettext_noop

from guardians.staff.forms import AdminLoginForm
from lookups.oversight.admin_mixins import KinguardAdminSite as AuditedOTPAdminSite

# Strings of Django admin's own templates that Django's zh_Hans catalogue lacks: marked here
# so that makemessages keeps their entries in our catalogue (it never reads .venv).
DJANGO_ADMIN_MISSING_MESSAGES = (gettext_noop("Change or view list link"),)


class KinguardAdminSite(AuditedOTPAdminSite):
    """OTP-only admin with audited sign-ins and the shared password + code form."""

    login_form = AdminLoginForm
    login_template = "admin/kinguard_login.html"
    site_header = "Kinguard administration"
    site_title = "Kinguard"

    def __init__(self, name: str = "admin") -> None:
        # OTPAdminSite defaults to "otpadmin"; keep the "admin" namespace every URL uses.
        super().__init__(name)
