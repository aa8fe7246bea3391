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
    path("preferences/large-text/", views.large_text, name="large_text"),
    path("preferences/language/", views.language, name="language"),
    path("me/", views.my_page, name="me"),
    path("me/looked-up/", views.looked_me_up, name="looked_me_up"),
    path("me/guardians/", views.my_guardians, name="my_guardians"),
    path("me/guardians/<int:authorization_id>/removal/", views.request_removal, name="request_removal"),
]
