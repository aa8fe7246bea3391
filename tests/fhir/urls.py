"""The project's URLs plus the FHIR desk queue, as the integrator will include it under /staff/."""

from django.urls import include, path

from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("staff/", include("lookups.fhir.staff_urls")), *project_urlpatterns]
