"""Licence-number encryption: authenticated, rotatable, searchable by keyed hash, and loud with the wrong key."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from cryptography.fernet import Fernet

from services import crypto
from services.crypto import DecryptionError, KeyConfigurationError, LicenceCipher

LICENCE = "MORGA753116SM9IJ"
OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("FLEETDESK_ENCRYPTION_KEYS", raising=False)
    monkeypatch.delenv("FLEETDESK_ENV", raising=False)
    monkeypatch.setenv("FLEETDESK_HOME", str(tmp_path / "home"))


def test_a_licence_number_round_trips_and_its_token_does_not_contain_it():
    cipher = LicenceCipher([NEW])
    token = cipher.encrypt(LICENCE)
    assert cipher.decrypt(token) == LICENCE
    assert LICENCE.encode() not in token and LICENCE.encode() not in base64.urlsafe_b64decode(token)


def test_two_encryptions_differ_but_their_lookup_hash_is_the_same():
    cipher = LicenceCipher([NEW])
    assert cipher.encrypt(LICENCE) != cipher.encrypt(LICENCE)
    assert cipher.lookup_hash(LICENCE) == cipher.lookup_hash(LICENCE)
    assert len(cipher.lookup_hash(LICENCE)) == 32


def test_the_lookup_hash_ignores_case_spaces_and_hyphens():
    cipher = LicenceCipher([NEW])
    assert cipher.lookup_hash("morga 753116-sm9ij") == cipher.lookup_hash(LICENCE)
    assert cipher.lookup_hash("MORGA753116SM9IK") != cipher.lookup_hash(LICENCE)
    assert crypto.normalise_licence_number(" ab-12 34\tcd ") == "AB1234CD"


def test_the_lookup_hash_is_keyed_and_not_a_plain_hash():
    import hashlib

    a, b = LicenceCipher([OLD]), LicenceCipher([NEW])
    assert a.lookup_hash(LICENCE) != b.lookup_hash(LICENCE)
    assert a.lookup_hash(LICENCE) != hashlib.sha256(LICENCE.encode()).digest()


def test_decrypting_with_the_wrong_key_fails_loudly_instead_of_returning_garbage():
    token = LicenceCipher([OLD]).encrypt(LICENCE)
    with pytest.raises(DecryptionError, match="not in FLEETDESK_ENCRYPTION_KEYS") as caught:
        LicenceCipher([NEW]).decrypt(token, what="the licence number of customer 7")
    assert "customer 7" in str(caught.value)
    assert LICENCE not in str(caught.value)


def test_a_tampered_token_is_refused():
    cipher = LicenceCipher([NEW])
    token = bytearray(cipher.encrypt(LICENCE))
    token[40] = ord("A") if token[40] != ord("A") else ord("B")
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(token))
    with pytest.raises(DecryptionError):
        cipher.decrypt(b"not a token at all")


def test_the_first_key_encrypts_and_every_key_decrypts():
    old_token = LicenceCipher([OLD]).encrypt(LICENCE)
    both = LicenceCipher([NEW, OLD])
    assert both.decrypt(old_token) == LICENCE
    new_token = both.encrypt(LICENCE)
    assert LicenceCipher([NEW]).decrypt(new_token) == LICENCE
    with pytest.raises(DecryptionError):
        LicenceCipher([OLD]).decrypt(new_token)


def test_lookup_works_during_rotation_and_reencrypt_moves_token_and_hash_to_the_first_key():
    old = LicenceCipher([OLD])
    stored_token, stored_hash = old.encrypt(LICENCE), old.lookup_hash(LICENCE)
    both = LicenceCipher([NEW, OLD])
    assert stored_hash in both.lookup_hashes(LICENCE)
    token, digest = both.reencrypt(stored_token)
    only_new = LicenceCipher([NEW])
    assert only_new.decrypt(token) == LICENCE
    assert digest == only_new.lookup_hash(LICENCE) == only_new.lookup_hashes(LICENCE)[0]


def test_keys_come_from_the_environment_first_key_first(monkeypatch):
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", f" {NEW} ,{OLD},")
    assert crypto.configured_keys() == (NEW, OLD)
    assert crypto.check_configuration() == 2


@pytest.mark.parametrize("bad", ["short", "x" * 44, base64.urlsafe_b64encode(b"k" * 16).decode(), "é" * 44])
def test_a_malformed_key_is_a_clear_error_that_does_not_echo_the_key(monkeypatch, bad):
    monkeypatch.setenv("FLEETDESK_ENCRYPTION_KEYS", f"{NEW},{bad}")
    with pytest.raises(KeyConfigurationError, match="Encryption key 2 is not a valid key") as caught:
        LicenceCipher.from_environment()
    assert bad not in str(caught.value)
    assert "fleetdesk keys generate" in str(caught.value)


def test_production_mode_refuses_to_start_without_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("FLEETDESK_ENV", "production")
    with pytest.raises(KeyConfigurationError) as caught:
        crypto.check_configuration()
    assert str(caught.value) == ("FLEETDESK_ENCRYPTION_KEYS is not set; production mode refuses to start without "
                                 "keys — generate one with `fleetdesk keys generate`.")
    assert not (tmp_path / "home" / "encryption_key").exists()


def test_without_keys_the_embedded_setup_generates_one_private_key_once(tmp_path):
    first = crypto.configured_keys()
    key_file = tmp_path / "home" / "encryption_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert crypto.configured_keys() == first
    assert LicenceCipher(first).decrypt(LicenceCipher(first).encrypt(LICENCE)) == LICENCE
    assert [p.name for p in key_file.parent.iterdir()] == ["encryption_key"]  # no temporary file left behind


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    crypto.configured_keys()
    key_file = tmp_path / "home" / "encryption_key"
    os.chmod(key_file, 0o644)
    with pytest.raises(KeyConfigurationError, match="chmod 600"):
        crypto.configured_keys()


def test_generated_keys_are_valid_and_different():
    first, second = crypto.generate_key(), crypto.generate_key()
    assert first != second
    assert LicenceCipher([first, second]).key_count == 2
