from django.urls import path

from . import views

app_name = "lookups"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("start/<uuid:elder_public_id>/", views.start, name="start"),
    path("<uuid:lookup_id>/otp/", views.otp, name="otp"),
    path("<uuid:lookup_id>/face/", views.face, name="face"),
    path("<uuid:lookup_id>/wait/", views.wait, name="wait"),
    path("<uuid:lookup_id>/status.json", views.status, name="status"),
    path("<uuid:lookup_id>/results/", views.results, name="results"),
    path("<uuid:lookup_id>/ended/", views.ended, name="ended"),
    path("<uuid:lookup_id>/cancel/", views.cancel, name="cancel"),
]
