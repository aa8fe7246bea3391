"""Names typed at the desk are shown as text everywhere, never run as markup."""

import pytest
from django.urls import reverse

from tests import factories
from tests.helpers import start_lookup

pytestmark = pytest.mark.django_db
PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_hostile_names_are_escaped_on_guardian_and_staff_pages(client, staff, manager, clinic):
    from config.middleware import SESSION_OTP_AT
    from tests.helpers import verified_client

    elder = factories.make_person(staff, clinic, f"Elder {PAYLOAD}", elder=True)
    guardian = factories.make_person(staff, clinic, f"Guardian {PAYLOAD}", guardian=True, login=True)
    factories.make_active_authorization(staff, manager, guardian, elder)
    client.force_login(guardian.user)
    pages = [client.get(reverse("lookups:dashboard")).content.decode()]
    lookup = start_lookup(client, elder)
    pages.append(client.get(reverse("lookups:otp", args=[lookup.pk])).content.decode())
    desk = verified_client(staff)
    assert SESSION_OTP_AT in desk.session
    pages.append(desk.get(reverse("staff:person", args=[elder.public_id])).content.decode())
    pages.append(desk.get(reverse("staff:people"), {"q": "Elder"}).content.decode())
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
