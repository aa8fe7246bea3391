"""The clinic staff workspace, mounted at ``/staff/`` (namespace ``staff``)."""

from django.urls import path

from . import views

app_name = "staff"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("reverify/", views.reverify, name="reverify"),
    path("people/", views.people, name="people"),
    path("people/register/elder/", views.register_elder, name="register_elder"),
    path("people/register/guardian/", views.register_guardian, name="register_guardian"),
    path("people/<uuid:public_id>/", views.person, name="person"),
    path("people/<uuid:public_id>/account/", views.account_create, name="account_create"),
    path("people/<uuid:public_id>/password-link/", views.password_link, name="password_link"),
    path("people/<uuid:public_id>/authenticator/", views.otp_enroll, name="otp_enroll"),
    path("people/<uuid:public_id>/backup-codes/", views.backup_codes, name="backup_codes"),
    path("people/<uuid:public_id>/face/consent/", views.face_consent, name="face_consent"),
    path("people/<uuid:public_id>/face/", views.face_enroll, name="face_enroll"),
    path("people/<uuid:public_id>/face/withdraw/", views.face_withdraw, name="face_withdraw"),
    path("authorizations/", views.authorizations, name="authorizations"),
    path("authorizations/new/", views.authorization_new, name="authorization_new"),
    path("authorizations/<int:pk>/", views.authorization, name="authorization"),
    path("authorizations/<int:pk>/approve/", views.authorization_approve, name="authorization_approve"),
    path("authorizations/<int:pk>/revoke/", views.authorization_revoke, name="authorization_revoke"),
    path("authorizations/<int:pk>/suspend/", views.authorization_suspend, name="authorization_suspend"),
    path("authorizations/<int:pk>/renew/", views.authorization_renew, name="authorization_renew"),
    path("results/", views.results, name="results"),
    path("results/new/", views.result_new, name="result_new"),
    path("results/import/", views.results_import, name="results_import"),
    path("results/<int:pk>/photo/", views.result_photo, name="result_photo"),
]
