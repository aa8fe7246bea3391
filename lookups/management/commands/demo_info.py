"""Print how to use the local demo: URL, logins, and how to get TOTP codes."""

from django.core.management.base import BaseCommand
from django_otp.plugins.otp_totp.models import TOTPDevice

from guardians.models import FaceEnrollment
from lookups.management.commands.seed_demo import DEMO_PASSWORD


class Command(BaseCommand):
    help = "Print the demo URL, logins and authenticator setup."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port, **options):
        url = f"http://127.0.0.1:{port}/"
        enrolled = set(FaceEnrollment.objects.values_list("person__user__username", flat=True))
        out = self.stdout.write
        out("")
        out(self.style.SUCCESS(f"Kinguard is starting at {url}  (admin: {url}admin/)   Ctrl-C stops web and worker."))
        out(f"Clinic staff workspace: {url}staff/  (password + code: manage.py totp_code staff)")
        out(f"All demo logins use the password: {DEMO_PASSWORD}")
        for username, role in (
            ("li.wei", "guardian of Zhang Xiuying"),
            ("wang.fang", "guardian of Chen Guilan"),
            ("zhao.min", "elder, looks up own results"),
            ("staff", "clinic front desk (/staff/ and admin, needs OTP)"),
            ("manager", "clinic manager (/staff/ and admin, needs OTP; approves)"),
            ("auditor", "auditor (/staff/ read-only and admin, needs OTP)"),
        ):
            face = "face enrolled" if username in enrolled else "no face enrolled"
            device = TOTPDevice.objects.filter(user__username=username, confirmed=True).first()
            out(f"  {username:<10} {role}; {face}")
            if device is not None:
                out(f"             authenticator: {device.config_url}")
        out("Current one-time code for a user: .venv/bin/python manage.py totp_code li.wei")
        out("QR code for your authenticator app: .venv/bin/python manage.py totp_code li.wei --uri")
        if not enrolled:
            out("No faces enrolled (the shared face set is not here). Enroll your own selfie:")
            out("  .venv/bin/python manage.py enroll_face li.wei my-selfie.jpg")
        out("")
