"""Error pages in the Kinguard layout, in both languages, with the clinic's phone where known."""

import pytest
from django.test import Client
from django.urls import path

from config import errors
from config import urls as project_urls


def _boom(request):
    raise RuntimeError("boom")


def _forbidden(request):
    from django.core.exceptions import PermissionDenied

    raise PermissionDenied


urlpatterns = [path("boom/", _boom), path("forbidden/", _forbidden), *project_urls.urlpatterns]
handler404 = errors.page_not_found
handler403 = errors.permission_denied
handler500 = errors.server_error


@pytest.mark.django_db
def test_404_in_layout_english(client):
    response = client.get("/no/such/page/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404
    page = response.content.decode()
    assert 'class="topbar"' in page and "Page not found" in page
    assert "front desk of your clinic" in page


@pytest.mark.django_db
def test_404_in_chinese(client):
    response = client.get("/no/such/page/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    page = response.content.decode()
    assert response.status_code == 404 and "找不到该页面" in page and 'lang="zh-hans"' in page


@pytest.mark.django_db
def test_guardians_refusal_404_shows_their_clinic_phone(guardian_client, guardian):
    clinic = guardian.clinic
    clinic.phone = "+86 21 5555 0100"
    clinic.save(update_fields=["phone"])  # test set-up of a fixture row
    response = guardian_client.get("/lookups/elders/999999/start/", HTTP_ACCEPT_LANGUAGE="en")
    if response.status_code != 404:  # the URL shape may differ; any unknown page is the same refusal
        response = guardian_client.get("/lookups/no-such-elder/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404
    page = response.content.decode()
    assert "+86 21 5555 0100" in page and clinic.name in page


@pytest.mark.django_db
@pytest.mark.urls("tests.config.test_error_pages")
def test_403_page(client):
    response = client.get("/forbidden/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 403 and "无权访问" in response.content.decode()


@pytest.mark.django_db
def test_csrf_failure_page_in_layout(guardian):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(guardian.user)
    response = csrf_client.post("/accounts/logout/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 403
    page = response.content.decode()
    assert "Please try again" in page and "nothing was saved" in page and 'class="topbar"' in page


@pytest.mark.django_db
@pytest.mark.urls("tests.config.test_error_pages")
def test_500_page_needs_no_database_and_is_translated():
    client = Client(raise_request_exception=False)
    response = client.get("/boom/", HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 500
    page = response.content.decode()
    assert "出错了" in page and "boom" not in page
    response = Client(raise_request_exception=False).get("/boom/", HTTP_ACCEPT_LANGUAGE="en")
    assert "Something went wrong" in response.content.decode()
