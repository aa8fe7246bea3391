"""Settings values from the environment, through one library (environs).

Every setting is read with ``env.<kind>(NAME, default)``. A value that does not parse raises
``SettingsError`` naming the variable and what it expects (``KINGUARD_GRANT_MINUTES='10m'
is not valid: expected a whole number, e.g. 10``), never a bare traceback from ``int()`` and
never a silent ``False`` for ``DJANGO_DEBUG=ture``. Values of secret variables are never
echoed in the message.

``.env``: development only. When the settings module is ``config.settings.local`` (the
default of ``manage.py``) a ``.env`` file at the repository root is read; variables already
set in the real environment win. Production and test settings never read it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvError

BASE_DIR = Path(__file__).resolve().parent.parent

EXPECTS: dict[str, str] = {
    "int": "a whole number, e.g. 10",
    "float": "a number, e.g. 0.6",
    "bool": "true or false (also 1/0, yes/no, on/off)",
    "str": "a text value",
    "list": "a comma-separated list",
    "path": "a file-system path",
    "dj_db_url": "a database URL, e.g. postgres://user@host:5432/kinguard",
    "dj_email_url": "an e-mail URL, e.g. submission://user:password@smtp.example.com:587 or console://",
    "url": "a URL",
}
_SECRET_MARKERS = ("KEY", "SECRET", "PASSWORD", "TOKEN", "URL")


class SettingsError(ImproperlyConfigured):
    """A setting is missing or does not parse; the message says which and what is expected."""


def _shown(name: str) -> str:
    raw = os.environ.get(name, "")
    if any(marker in name.upper() for marker in _SECRET_MARKERS):
        return name
    return f"{name}={raw!r}"


class KinguardEnv:
    """A thin wrapper over ``environs.Env`` whose errors explain themselves."""

    def __init__(self) -> None:
        self._env = Env(expand_vars=False)

    def read_dotenv(self, path: Path) -> bool:
        if path.is_file():
            self._env.read_env(str(path), recurse=False, override=False)
            return True
        return False

    def __getattr__(self, kind: str) -> Callable[..., Any]:
        parser = getattr(self._env, kind)

        def parse(name: str, *args: Any, **kwargs: Any) -> Any:
            try:
                return parser(name, *args, **kwargs)
            except EnvError:
                if name not in os.environ:
                    raise SettingsError(f"Set the {name} environment variable (no default here).") from None
                raise SettingsError(f"{_shown(name)} is not valid: expected {EXPECTS.get(kind, kind)}.") from None

        return parse

    def required(self, name: str) -> str:
        """A non-empty string with no default (production secrets)."""
        value = os.environ.get(name, "").strip()
        if not value:
            raise SettingsError(f"Set the {name} environment variable (production has no default).")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default).strip()
        if value not in choices:
            raise SettingsError(f"{_shown(name)} is not valid: expected one of {', '.join(choices)}.")
        return value


env = KinguardEnv()
if os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.local") == "config.settings.local":
    env.read_dotenv(BASE_DIR / ".env")
