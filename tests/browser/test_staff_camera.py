"""The front desk enrolls a face with the webcam on the staff page (fake camera clip)."""

import re

import pytest

from guardians import services as guardian_services
from guardians.models import FaceEnrollment
from lookups.audit import Actor
from lookups.faces.detection import detect_single_face
from lookups.faces.images import load_probe_image
from lookups.faces.matching import compare
from tests.browser.conftest import PASSWORD, assert_accessible, shot
from tests.helpers import face_bytes, totp_now

pytestmark = pytest.mark.timeout(240)


def test_staff_enrolls_a_face_with_the_webcam(new_page, family):
    staff_device = guardian_services.totp_device_create(actor=Actor.system("test"), user=family.staff, confirmed=True)
    page = new_page("person_04.y4m")
    page.goto("/staff/login/")
    page.locator("#id_username").fill(family.staff.username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#id_otp_token").fill(totp_now(staff_device))
    page.locator("form button.primary").click()
    page.wait_for_url(re.compile(r"/staff/$"))
    page.goto(f"/staff/people/{family.guardian.public_id}/face/consent/")
    for index in range(page.locator("input[type=checkbox]").count()):
        page.locator("input[type=checkbox]").nth(index).check()
    page.get_by_role("button", name=re.compile("Record consent")).click()
    page.wait_for_url(re.compile(r"/face/$"))
    page.get_by_role("button", name="Start the camera").click()
    page.wait_for_function("() => document.getElementById('camera-video').videoWidth > 0")
    for _ in range(3):
        page.get_by_role("button", name="Take a photo").click()
        page.wait_for_timeout(600)
    assert page.locator("input[type=file][name=photos]").evaluate("input => input.files.length") == 3
    assert_accessible(page, "staff face enrollment")
    shot(page, "staff-1-face-enroll")
    page.get_by_role("button", name="Enroll", exact=True).click()
    page.wait_for_url(re.compile(rf"/staff/people/{family.guardian.public_id}/$"))
    assert "The face is enrolled from 3 photo(s)." in page.locator("body").inner_text()
    # The new template is the camera's person (person_04), replacing the old person_01 one.
    enrollment = FaceEnrollment.objects.get(person=family.guardian)
    assert enrollment.sample_count == 3
    template = guardian_services.face_template_of(family.guardian)
    other_photo = detect_single_face(load_probe_image(face_bytes("person_04/02.jpg")))
    old_identity = detect_single_face(load_probe_image(face_bytes("person_01/04.jpg")))
    assert compare(template, other_photo).matched
    assert not compare(template, old_identity).matched
