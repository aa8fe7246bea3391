"""App configs of the project package (no model imports here: loaded while apps populate)."""

from django.contrib.admin.apps import AdminConfig


class KinguardAdminConfig(AdminConfig):
    """Replaces ``django.contrib.admin`` in INSTALLED_APPS: ``admin.site`` is Kinguard's site."""

    default_site = "config.admin_site.KinguardAdminSite"
