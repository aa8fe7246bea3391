from django.urls import path, re_path

from . import views

app_name = "fhir"

urlpatterns = [
    path("", views.bundle, name="bundle"),
    path("metadata", views.metadata, name="metadata"),
    path("DiagnosticReport", views.diagnostic_report, name="diagnostic_report"),
    re_path(r"^(?P<rest>.*)$", views.not_found, name="not_found"),
]
