"""Encryption at rest and keyed hashing for identifiers and biometric templates.

Invariant: plaintext ID numbers and face templates never reach the database. Ciphertext is
MultiFernet (newest key first, so old rows stay readable during a key rotation); lookup by
ID number goes through an HMAC-SHA256 keyed with a separate key, so the hash column alone
cannot be brute-forced over the small space of valid ID numbers without that key.
"""

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class DecryptionError(Exception):
    """Stored ciphertext could not be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("KINGUARD_ENCRYPTION_KEYS is empty.")
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.KINGUARD_ENCRYPTION_KEYS))


def encrypt(plaintext: bytes) -> bytes:
    return fernet().encrypt(plaintext)


def decrypt(ciphertext: bytes) -> bytes:
    try:
        return fernet().decrypt(bytes(ciphertext))
    except InvalidToken as exc:
        raise DecryptionError("ciphertext does not match any configured key") from exc


def keyed_hash(value: str) -> str:
    key = settings.KINGUARD_ID_HASH_KEY
    if not key:
        raise ImproperlyConfigured("KINGUARD_ID_HASH_KEY is empty.")
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()
