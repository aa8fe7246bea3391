"""A confirmed lab file import run by a real Celery worker (default queue, Redis, PostgreSQL),
the staged file shared through the private storage as on a real deployment."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from guardians import crypto
from lookups.models import AuditEvent, TestResult
from tests import factories
from tests.helpers import verified_client
from tests.integration.workers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
HEADER = "身份证号,检测类型,采样时间,采样点,检测机构,结果,报告时间"


def test_the_worker_imports_a_confirmed_gb18030_file(start_worker, redis_web, staff, clinic, settings):
    worker = start_worker(queues="default", KINGUARD_PRIVATE_STORAGE=str(settings.PRIVATE_STORAGE_ROOT))
    elders = [factories.make_person(staff, clinic, f"长者{i}", elder=True) for i in range(3)]
    lines = [
        f"{crypto.decrypt(e.id_number_ciphertext).decode()},nucleic_acid,2026-01-05 09:30,社区站,市检测中心,阴性,"
        "2026-01-06 08:00"
        for e in elders
    ]
    data = "\n".join([HEADER, *lines]).encode("gb18030")
    client = verified_client(staff)
    preview = client.post(
        reverse("staff:results_import"), {"clinic": clinic.pk, "file": SimpleUploadedFile("r.csv", data)}
    )
    assert preview.status_code == 200 and preview.context["preview"].ok
    confirm = client.post(
        reverse("staff:results_import_confirm"), {"token": preview.context["confirm"]["token"].value()}
    )
    assert confirm.status_code == 302

    def finished():
        page = client.get(confirm.url)
        return page if "Refresh" not in page else None

    page = wait_for(finished, timeout=60, what="the worker to import the file", worker=worker)
    assert "Imported 3 results." in page.content.decode()
    assert TestResult.objects.filter(clinic=clinic).count() == 3
    assert AuditEvent.objects.get(action="results.imported").details["rows"] == 3
