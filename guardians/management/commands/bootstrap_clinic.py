"""``manage.py bootstrap_clinic --name NAME --manager LOGIN``: the first clinic and manager.

Prints a set-password link and the authenticator as a terminal QR code (and its otpauth URI).
Safe to run again (see ``guardians.first_run``). Works with production settings.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from guardians.first_run import clinic_bootstrap


def terminal_qr(data: str) -> str:
    import qrcode

    qr = qrcode.QRCode(border=2)
    qr.add_data(data)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


class Command(BaseCommand):
    help = "Create the first clinic, its manager account and an authenticator (idempotent, audited)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="Clinic name (unique).")
        parser.add_argument("--manager", required=True, help="Login name of the clinic's first manager.")
        parser.add_argument("--phone", default="", help="Clinic phone, shown on notices and error pages.")
        parser.add_argument("--address", default="")
        parser.add_argument(
            "--base-url",
            default="",
            help="Public address, e.g. https://kinguard.clinic.example (default: first DJANGO_ALLOWED_HOSTS).",
        )

    def handle(self, *args, **options) -> None:
        result = clinic_bootstrap(
            name=options["name"], manager_login=options["manager"], phone=options["phone"], address=options["address"]
        )
        w = self.stdout.write
        w(f"Clinic: {result.clinic.name} ({'created' if result.clinic_created else 'already there'})")
        w(f"Manager: {result.manager.username} ({'created' if result.manager_created else 'already there'})")
        if result.device is None:
            w("The manager has already set a password; nothing else to do.")
            w("A lost authenticator is replaced at the staff desk by another manager, not here.")
            return
        base = options["base_url"].rstrip("/")
        if not base:
            hosts = [h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")]
            base = f"https://{hosts[0]}" if hosts else "https://localhost"
        w("")
        w("1. Scan this code with an authenticator app (e.g. FreeOTP, Google Authenticator):")
        w(terminal_qr(result.device.config_url))
        w(f"   or enter: {result.device.config_url}")
        w("2. Open this one-time link and choose a password:")
        w(f"   {base}{result.set_password_path}")
        w("3. Sign in at " + f"{base}/staff/login/ with the password and the 6-digit code.")
