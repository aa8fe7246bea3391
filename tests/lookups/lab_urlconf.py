"""The project's urls plus lookups.lab_urls under /staff/ (as the integrator will include them)."""

from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("staff/", include("lookups.lab_urls")), *project_urlpatterns]
