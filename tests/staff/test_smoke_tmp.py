import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_dump(staff_client, staff, clinic, authorization, results):
    r = staff_client.post(reverse("staff:register_guardian"), {"full_name": "X", "id_number": "110101194001010054", "birth_date": "1940-01-02", "username": "a b"})
    print(r.status_code)
    html = r.content.decode()
    print(html[html.index("<main"):][:5000])
