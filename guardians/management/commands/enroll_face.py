"""Enroll a person's face from photos: ``manage.py enroll_face USERNAME PHOTO [PHOTO ...]``."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from guardians import services
from guardians.models import Person
from lookups.audit import Actor
from lookups.faces.errors import ProbeRejected


class Command(BaseCommand):
    help = "Enroll (or re-enroll) the face of the person who logs in as USERNAME, from 1-5 photos."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("photos", nargs="+", type=Path)
        parser.add_argument("--staff", default="staff", help="staff username recorded as enrolling (default: staff)")
        parser.add_argument("--consent", default="Consent recorded at the command line by clinic staff.")

    def handle(self, *args, username, photos, staff, consent, **options):
        users = get_user_model().objects
        person = Person.objects.filter(user__username=username).first()
        if person is None:
            raise CommandError(f"No person with login {username!r}.")
        staff_user = users.filter(username=staff).first()
        if staff_user is None:
            raise CommandError(f"No staff user {staff!r}.")
        images = []
        for path in photos:
            if not path.is_file():
                raise CommandError(f"{path}: no such file.")
            images.append(path.read_bytes())
        try:
            actor = Actor.for_user(staff_user)
            # The separate biometric consent is a record of its own; face_enroll requires it.
            services.face_consent_record(actor=actor, person=person, consent_text=consent, given_by="person")
            enrollment = services.face_enroll(actor=actor, person=person, images=images)
        except ProbeRejected as exc:
            raise CommandError(f"{photos[getattr(exc, 'image_index', 0)]}: {exc.message}") from exc
        except services.ServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Enrolled {person.full_name} from {enrollment.sample_count} photo(s)."))
