"""manage.py lab_sender create NAME --clinic ID [--clinic ID] | rotate NAME | revoke NAME.

The token is printed once, on create and rotate; only its hash is stored.
"""

from django.core.management.base import BaseCommand, CommandError

from guardians.models import Clinic
from lookups.fhir import tokens
from lookups.fhir.models import LabSender


class Command(BaseCommand):
    help = "Register, rotate or revoke a laboratory sender for the FHIR endpoint."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "rotate", "revoke"])
        parser.add_argument("name")
        parser.add_argument("--clinic", type=int, action="append", default=[], help="clinic id (repeatable)")

    def handle(self, *args, action: str, name: str, clinic: list[int], **options):
        if action == "create":
            if not clinic:
                raise CommandError("A sender serves at least one clinic: --clinic ID.")
            found = set(Clinic.objects.filter(pk__in=clinic).values_list("pk", flat=True))
            if missing := sorted(set(clinic) - found):
                raise CommandError(f"No clinic with id {', '.join(map(str, missing))}.")
            if LabSender.objects.filter(name=name).exists():
                raise CommandError(f"A sender named {name!r} exists; use rotate.")
            sender, token = tokens.sender_create(name=name, clinic_ids=clinic)
        else:
            try:
                if action == "rotate":
                    sender, token = tokens.sender_rotate(name=name)
                else:
                    tokens.sender_revoke(name=name)
                    self.stdout.write(f"Sender {name} revoked; its token no longer works.")
                    return
            except LabSender.DoesNotExist as exc:
                raise CommandError(f"No sender named {name!r}.") from exc
        self.stdout.write(f"Sender {sender.name} ({action}d). Token (shown once, store it now):")
        self.stdout.write(token)
