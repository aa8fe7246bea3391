#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    from django.conf import settings
    from django.core.management import execute_from_command_line

    from config.env import SettingsError

    try:
        settings.INSTALLED_APPS  # noqa: B018  (loads the settings: a bad value is named, not a traceback)
    except SettingsError as exc:
        sys.exit(f"Kinguard settings error: {exc}")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
