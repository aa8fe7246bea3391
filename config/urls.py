from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config import health
from lookups import views as lookup_views
from lookups.oversight import admin_mixins as oversight_admin

# admin.site is config.admin_site.KinguardAdminSite (INSTALLED_APPS: KinguardAdminConfig): staff
# must present a verified OTP device; every change on it is audited (lookups.oversight).
oversight_admin.install(admin.site)

urlpatterns = [
    path("", lookup_views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/login/", lookup_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("lookups/", include("lookups.urls")),
    path("staff/", include("guardians.urls")),
    path("staff/", include("lookups.fhir.staff_urls")),  # results waiting for a registration
    path("accounts/", include("guardians.account_urls")),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    # Laboratory result delivery, FHIR R4 (write only; lookups.fhir).
    path("fhir/", include("lookups.fhir.urls")),
]

handler404 = "config.errors.page_not_found"
handler403 = "config.errors.permission_denied"
handler500 = "config.errors.server_error"
