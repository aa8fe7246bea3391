"""Development helper: print the current TOTP code of a user's device (DEBUG only)."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Print the current 6-digit code of USERNAME's authenticator (only with DEBUG on)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--uri", action="store_true", help="print the otpauth:// URI and a terminal QR code")

    def handle(self, *args, username, uri, **options):
        if not settings.DEBUG:
            raise CommandError("Refused: this helper exists only for local development (DEBUG=True).")
        device = TOTPDevice.objects.filter(user__username=username, confirmed=True).first()
        if device is None:
            raise CommandError(f"{username} has no confirmed TOTP device.")
        if uri:
            import qrcode

            qr = qrcode.QRCode(border=1)
            qr.add_data(device.config_url)
            qr.print_ascii(out=self.stdout, invert=True)
            self.stdout.write(device.config_url)
            return
        totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        totp.time = time.time()
        remaining = device.step - int(totp.time - device.t0) % device.step
        self.stdout.write(f"{totp.token():0{device.digits}d}  (valid for {remaining} more s)")
