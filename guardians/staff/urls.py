"""The clinic staff workspace, mounted at ``/staff/`` (namespace ``staff``)."""

from django.urls import path

from .views import authorizations, enrollment, people, results, sign_in

app_name = "staff"

urlpatterns = [
    path("", people.home, name="home"),
    path("login/", sign_in.login, name="login"),
    path("logout/", sign_in.logout, name="logout"),
    path("reverify/", sign_in.reverify, name="reverify"),
    path("people/", people.people, name="people"),
    path("people/register/elder/", people.register_elder, name="register_elder"),
    path("people/register/guardian/", people.register_guardian, name="register_guardian"),
    path("people/<uuid:public_id>/", people.person, name="person"),
    path("people/<uuid:public_id>/account/", people.account_create, name="account_create"),
    path("people/<uuid:public_id>/password-link/", people.password_link, name="password_link"),
    path("people/<uuid:public_id>/authenticator/", enrollment.otp_enroll, name="otp_enroll"),
    path("people/<uuid:public_id>/backup-codes/", enrollment.backup_codes, name="backup_codes"),
    path("people/<uuid:public_id>/face/consent/", enrollment.face_consent, name="face_consent"),
    path("people/<uuid:public_id>/face/", enrollment.face_enroll, name="face_enroll"),
    path("people/<uuid:public_id>/face/withdraw/", enrollment.face_withdraw, name="face_withdraw"),
    path("authorizations/", authorizations.authorizations, name="authorizations"),
    path("authorizations/new/", authorizations.authorization_new, name="authorization_new"),
    path("authorizations/<int:pk>/", authorizations.authorization, name="authorization"),
    path("authorizations/<int:pk>/approve/", authorizations.authorization_approve, name="authorization_approve"),
    path("authorizations/<int:pk>/revoke/", authorizations.authorization_revoke, name="authorization_revoke"),
    path("authorizations/<int:pk>/suspend/", authorizations.authorization_suspend, name="authorization_suspend"),
    path("authorizations/<int:pk>/renew/", authorizations.authorization_renew, name="authorization_renew"),
    path("results/", results.results, name="results"),
    path("results/new/", results.result_new, name="result_new"),
    path("results/import/", results.results_import, name="results_import"),
    path("results/import/confirm/", results.results_import_confirm, name="results_import_confirm"),
    path("results/import/<str:key>/", results.results_import_status, name="results_import_status"),
    path("results/<int:pk>/photo/", results.result_photo, name="result_photo"),
]
