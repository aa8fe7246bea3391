"""Account pages for people registered at the desk (namespace ``accounts``)."""

from django.urls import path

from . import account_views as views

app_name = "accounts"

urlpatterns = [
    path("set-password/<uidb64>/<token>/", views.SetPasswordView.as_view(), name="set_password"),
    path("set-password/done/", views.set_password_done, name="set_password_done"),
]
