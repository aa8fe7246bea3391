"""Idempotent demo data: one clinic, two staff, two guardians, three elders, results.

The staff role groups and their permissions come from migration guardians 0002.

Where the shared face set exists (KINGUARD_FACES_DIR, default ../shared/faces) the guardians
are enrolled from it; elsewhere no face is enrolled and the README shows how to enroll your
own (``manage.py enroll_face``).
"""

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from guardians import crypto, id_numbers, services
from guardians.models import Authorization, Clinic, FaceEnrollment, Person
from lookups.audit import Actor
from lookups.models import TestResult
from lookups.services import result_record

# Public demo data, documented in the README (bandit B105 reviewed).
DEMO_PASSWORD = "kinguard-demo-2026"  # noqa: S105  # nosec B105
# Fixed demo TOTP secrets so the demo authenticator entries survive a re-seed.
DEMO_TOTP_KEYS = {
    "staff": "3132333435363738393031323334353637383930",
    "manager": "4b696e6775617264206d616e61676572206b6579",
    "li.wei": "4b696e677561726420677561726469616e204c69",
    "wang.fang": "4b696e67756172642067756172646961204e5741",
    "zhao.min": "4b696e67756172642065656c6465722053656c66",
    "auditor": "4b696e6775617264206175646974206b65792121",
}


def faces_dir() -> Path:
    return Path(settings.KINGUARD_FACES_DIR)


class Command(BaseCommand):
    help = "Create demo data (idempotent)."

    def handle(self, *args, **options):
        system = Actor.system("seed_demo")
        clinic, _ = Clinic.objects.get_or_create(
            name="Riverside Community Clinic", defaults={"address": "1 Riverside Road", "phone": "010-0000 0000"}
        )
        staff = self._login("staff", "Front desk (demo)")
        manager = self._login("manager", "Clinic manager (demo)")
        auditor = self._login("auditor", "Auditor (demo)")
        services.staff_member_add(actor=system, user=staff, clinic=clinic, role="staff")
        services.staff_member_add(actor=system, user=manager, clinic=clinic, role="manager")
        services.staff_member_add(actor=system, user=auditor, clinic=clinic, role="auditor")
        desk, approver = Actor.for_user(staff), Actor.for_user(manager)

        li = self._person(desk, clinic, "Li Wei", "11010119800512003", guardian=True, username="li.wei")
        wang = self._person(desk, clinic, "Wang Fang", "11010519850923004", guardian=True, username="wang.fang")
        zhang = self._person(desk, clinic, "Zhang Xiuying", "11010219400101005", elder=True)
        chen = self._person(desk, clinic, "Chen Guilan", "11010819380215006", elder=True)
        zhao = self._person(desk, clinic, "Zhao Min", "11010619420630007", elder=True, username="zhao.min")

        self._authorize(desk, approver, li, zhang, Authorization.Relationship.CHILD)
        self._authorize(desk, approver, wang, chen, Authorization.Relationship.GRANDCHILD)
        self._pending(desk, wang, zhao, Authorization.Relationship.OTHER)
        for elder in (zhang, chen, zhao):
            self._results(desk, elder)
        enrolled = self._faces(desk, {li: ("person_01", 3), wang: ("person_04", 3), zhao: ("person_10", 3)})
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"Faces enrolled from {faces_dir()}: {', '.join(enrolled) or 'none (folder not found)'}")

    def _login(self, username: str, name: str):
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=username, defaults={"first_name": name})
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        self._device(user)
        return user

    def _device(self, user) -> None:
        key = DEMO_TOTP_KEYS[user.username]
        if not TOTPDevice.objects.filter(user=user, key=key).exists():
            device = services.totp_device_create(
                actor=Actor.system("seed_demo"), user=user, name="Demo authenticator", confirmed=True
            )
            device.key = key
            device.save(update_fields=["key"])

    def _person(self, actor, clinic, name, first17, *, guardian=False, elder=False, username=None) -> Person:
        number = id_numbers.make_valid(first17)
        person = Person.objects.filter(id_number_hash=crypto.keyed_hash(number)).first()
        if person is None:
            person = services.person_register(
                actor=actor,
                clinic=clinic,
                full_name=name,
                id_number=number,
                is_elder=elder,
                is_guardian=guardian,
                notify_email=f"{(username or name.lower().replace(' ', '.'))}@example.org",
            )
        if username and person.user_id is None:
            user = services.person_create_login(actor=actor, person=person, username=username, password=DEMO_PASSWORD)
            self._device(user)
        return person

    def _authorize(self, desk, approver, guardian, elder, relationship) -> None:
        if Authorization.objects.filter(guardian=guardian, elder=elder, status=Authorization.Status.ACTIVE).exists():
            return
        authorization = services.authorization_create(
            actor=desk,
            guardian=guardian,
            elder=elder,
            relationship=relationship,
            consent_basis=Authorization.ConsentBasis.ELDER_PRESENT,
        )
        services.authorization_approve(actor=approver, authorization_id=authorization.pk)

    def _pending(self, desk, guardian, elder, relationship) -> None:
        """One authorization left pending, so the staff workspace's approval queue has an entry."""
        if Authorization.objects.filter(guardian=guardian, elder=elder).exists():
            return
        services.authorization_create(
            actor=desk,
            guardian=guardian,
            elder=elder,
            relationship=relationship,
            consent_basis=Authorization.ConsentBasis.ELDER_PRESENT,
        )

    def _results(self, actor, elder) -> None:
        if TestResult.objects.filter(elder=elder).exists():
            return
        now = timezone.now().replace(microsecond=0)
        for days, kind, result in (
            (2, "nucleic_acid", "Negative"),
            (30, "antigen", "Negative"),
            (60, "blood", "HbA1c 6.1 %"),
        ):
            sampled = now - dt.timedelta(days=days, hours=3)
            result_record(
                actor=actor,
                elder=elder,
                kind=kind,
                sampled_at=sampled,
                site="Riverside sampling point 3",
                lab="City Central Laboratory",
                result=result,
                reported_at=sampled + dt.timedelta(hours=20),
            )

    def _faces(self, actor, plan) -> list[str]:
        enrolled: list[str] = []
        root = faces_dir()
        if not root.is_dir():
            return enrolled
        for person, (folder, count) in plan.items():
            if FaceEnrollment.objects.filter(person=person).exists():
                enrolled.append(person.full_name)
                continue
            images = sorted((root / folder).glob("*.jpg"))
            # Leave out the camera clips' source photo (04.jpg of person_01/01.jpg of person_04).
            images = [p for p in images if (folder, p.name) not in {("person_01", "04.jpg"), ("person_04", "01.jpg")}]
            if not images:
                continue
            services.face_consent_record(
                actor=actor,
                person=person,
                consent_text="Demo consent: template from the shared test face set.",
                given_by="person",
            )
            services.face_enroll(actor=actor, person=person, images=[p.read_bytes() for p in images[:count]])
            enrolled.append(f"{person.full_name} ({folder})")
        return enrolled
