"""Staff workspace pages for laboratory deliveries; included under /staff/ (namespace ``fhir_staff``)."""

from django.urls import path

from . import staff_views

app_name = "fhir_staff"

urlpatterns = [
    path("lab-results/waiting/", staff_views.pending_list, name="pending"),
    path("lab-results/waiting/<int:pending_id>/discard/", staff_views.pending_discard, name="pending_discard"),
]
