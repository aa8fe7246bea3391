"""Lab results file helpers for the staff workspace; included under ``/staff/`` by the integrator.

Plain url names (no namespace of its own): ``results_template_csv``, ``results_template_xlsx``.
"""

from django.urls import path

from . import lab_templates

urlpatterns = [
    path("results/template.csv", lab_templates.results_template_csv, name="results_template_csv"),
    path("results/template.xlsx", lab_templates.results_template_xlsx, name="results_template_xlsx"),
]
