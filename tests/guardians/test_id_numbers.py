import datetime as dt

import pytest

from guardians import crypto, id_numbers


def test_valid_number_with_x_check_character():
    # A published GB 11643 example: 11010519491231002X.
    number, birth = id_numbers.validate("11010519491231002x")
    assert number == "11010519491231002X"
    assert birth == dt.date(1949, 12, 31)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "18 characters"),
        ("1101051949123100", "18 characters"),
        ("11010519491231002Y", "18 characters"),
        ("110105194912310021", "check digit"),
        ("110105194902300026", "birth date"),
        (id_numbers.make_valid("11010530001231002"), "plausible"),
    ],
)
def test_invalid_numbers_say_why(raw, fragment):
    with pytest.raises(id_numbers.InvalidIdNumber, match=fragment):
        id_numbers.validate(raw)


def test_mask_shows_region_and_last_four_only():
    assert id_numbers.mask("11010519491231002X") == "110105********002X"


def test_spaces_and_dashes_are_ignored():
    assert id_numbers.validate("110105 1949 1231 002X")[0] == "11010519491231002X"


def test_keyed_hash_depends_on_key(settings):
    first = crypto.keyed_hash("11010519491231002X")
    settings.KINGUARD_ID_HASH_KEY = "another key"
    assert crypto.keyed_hash("11010519491231002X") != first


def test_ciphertext_round_trip_and_foreign_key_refused(settings):
    token = crypto.encrypt(b"11010519491231002X")
    assert b"11010519491231002X" not in token
    assert crypto.decrypt(token) == b"11010519491231002X"
    settings.KINGUARD_ENCRYPTION_KEYS = ["b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA="]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)
