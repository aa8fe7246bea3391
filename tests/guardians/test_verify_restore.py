"""The restore rehearsal's check: audit chain + ID numbers decrypt + hash key matches."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_restored_copy_verifies(elder, guardian):
    out = io.StringIO()
    call_command("verify_restore", stdout=out)
    assert "Restore verified." in out.getvalue() and "ID numbers: 2 decrypted" in out.getvalue()


@pytest.mark.django_db
def test_wrong_encryption_key_fails(elder, settings):
    settings.KINGUARD_ENCRYPTION_KEYS = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("verify_restore", stdout=io.StringIO(), stderr=err)
    assert exited.value.code == 1 and "ID numbers do not decrypt" in err.getvalue()


@pytest.mark.django_db
def test_wrong_hash_key_fails(elder, settings):
    settings.KINGUARD_ID_HASH_KEY = "not-the-key-the-data-was-hashed-with"
    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("verify_restore", stdout=io.StringIO(), stderr=err)
    assert "keyed hash" in err.getvalue()
