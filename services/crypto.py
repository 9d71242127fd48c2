"""Encryption of driving-licence numbers at rest, and the keyed hash that finds one by exact number.

Why Fernet (``MultiFernet``) rather than AES-GCM with a key-id prefix: Fernet is authenticated encryption
(AES-128-CBC then HMAC-SHA256 over the whole token) with a fresh random IV per token, so there is no nonce to manage
and nothing to get wrong; ``MultiFernet`` already does "the first key encrypts, every key decrypts" and ``rotate()``.
A token made under a key we no longer hold, or altered by one bit, fails its HMAC and raises — it can never decrypt
to garbage. What it costs: about 100 bytes per token and a plaintext creation timestamp inside it, which is harmless
for a licence number. AES-GCM would save those bytes but make us invent a key-id format and trust a 96-bit random
nonce per key; not worth it for one short field per customer.

The look-up hash is HMAC-SHA256 of the normalised number under a key derived with HKDF from each encryption key
(never the encryption key itself). A number is looked up under every configured key (`lookup_hashes`), so look-up
keeps working while a rotation is half done; `fleetdesk keys rotate` rewrites every hash under the first key.

Keys come from FLEETDESK_ENCRYPTION_KEYS (comma-separated Fernet keys, the first one encrypts). When it is unset,
the embedded set-up generates one key once into ``<FLEETDESK_HOME>/encryption_key`` (mode 600); with
FLEETDESK_ENV=production a missing key is a start-up error, never a silent default.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from db.config import fleetdesk_home
from services.errors import FleetdeskError

KEYS_VARIABLE = "FLEETDESK_ENCRYPTION_KEYS"
KEY_FILE_NAME = "encryption_key"
_LOOKUP_INFO = b"fleetdesk/licence-number-lookup/v1"
_SEPARATORS = re.compile(r"[\s\-]+")


class KeyConfigurationError(FleetdeskError):
    """The encryption keys are missing or malformed; the message says how to fix the configuration."""


class DecryptionError(FleetdeskError):
    """A stored value cannot be decrypted with any configured key (wrong key, or the value was altered)."""


def token_digest(token: str) -> bytes:
    """What is stored of a bearer token (API tokens, web sessions). Tokens are 256 random bits: a fast hash is
    enough (no dictionary to attack), and a look-up stays one index probe."""
    return hashlib.sha256(token.encode()).digest()


def generate_key() -> str:
    """A new random key in the form FLEETDESK_ENCRYPTION_KEYS expects."""
    return Fernet.generate_key().decode("ascii")


def normalise_licence_number(number: str) -> str:
    """The canonical form compared and stored: upper case, without spaces or hyphens."""
    return _SEPARATORS.sub("", number).upper()


def production_mode() -> bool:
    return os.environ.get("FLEETDESK_ENV", "").strip().lower() == "production"


class LicenceCipher:
    """Encrypts, decrypts and re-encrypts licence numbers, and computes their look-up hashes."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise KeyConfigurationError(f"No encryption key is configured; set {KEYS_VARIABLE} "
                                        "(generate one with `fleetdesk keys generate`).")
        raw_keys = [_decode_key(key, position) for position, key in enumerate(keys, start=1)]
        self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(raw)) for raw in raw_keys])
        self._lookup_keys = [_derive_lookup_key(raw) for raw in raw_keys]

    @classmethod
    def from_environment(cls) -> LicenceCipher:
        """The cipher for the configured keys (see the module docstring for where they come from)."""
        return _cipher_for(configured_keys())

    @property
    def key_count(self) -> int:
        return len(self._lookup_keys)

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def decrypt(self, token: bytes, *, what: str = "a stored value") -> str:
        """The plaintext; raises DecryptionError, never returns garbage, when no configured key fits."""
        try:
            return self._fernet.decrypt(bytes(token)).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise DecryptionError(
                f"Cannot decrypt {what} with the configured encryption keys: it was encrypted under a key that is "
                f"not in {KEYS_VARIABLE}, or it was altered. Add the old key after the current one "
                "(comma-separated) and run `fleetdesk keys rotate`."
            ) from None

    def reencrypt(self, token: bytes, *, what: str = "a stored value") -> tuple[bytes, bytes]:
        """The value encrypted under the first key, and its look-up hash under the first key."""
        plaintext = self.decrypt(token, what=what)
        return self.encrypt(plaintext), self.lookup_hash(plaintext)

    def lookup_hash(self, licence_number: str) -> bytes:
        """HMAC-SHA256 of the normalised number under the first key: what is stored beside the ciphertext."""
        return self._hmac(self._lookup_keys[0], licence_number)

    def lookup_hashes(self, licence_number: str) -> list[bytes]:
        """The number's hash under every configured key, to find rows not yet rotated to the first key."""
        return [self._hmac(key, licence_number) for key in self._lookup_keys]

    @staticmethod
    def _hmac(key: bytes, licence_number: str) -> bytes:
        return hmac.new(key, normalise_licence_number(licence_number).encode("utf-8"), hashlib.sha256).digest()


def configured_keys() -> tuple[str, ...]:
    """The keys, first (encrypting) one first: from FLEETDESK_ENCRYPTION_KEYS, else the local key file."""
    raw = os.environ.get(KEYS_VARIABLE, "")
    keys = tuple(part.strip() for part in raw.split(",") if part.strip())
    if keys:
        return keys
    if production_mode():
        raise KeyConfigurationError(
            f"{KEYS_VARIABLE} is not set; production mode refuses to start without keys — "
            "generate one with `fleetdesk keys generate`."
        )
    return (_local_key(fleetdesk_home() / KEY_FILE_NAME),)


def check_configuration() -> int:
    """Fail at start-up, with the reason, unless usable keys are configured; returns how many there are."""
    return LicenceCipher.from_environment().key_count


@functools.lru_cache(maxsize=8)
def _cipher_for(keys: tuple[str, ...]) -> LicenceCipher:
    return LicenceCipher(keys)


def _decode_key(key: str, position: int) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) != 32:
        # never echo the key itself: it may be a real key with one character wrong
        raise KeyConfigurationError(
            f"Encryption key {position} is not a valid key (expected 44 characters of url-safe base64, "
            f"32 bytes); fix {KEYS_VARIABLE} or generate a key with `fleetdesk keys generate`."
        )
    return raw


def _derive_lookup_key(raw_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LOOKUP_INFO).derive(raw_key)


def _local_key(path: Path) -> str:
    """The embedded set-up's key, generated on first use and readable by this user only."""
    if not path.exists():
        _write_new_key(path)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyConfigurationError(f"The local encryption key {path} is readable by other users; "
                                    f"run `chmod 600 {path}`.")
    key = path.read_text().strip()
    if not key:
        raise KeyConfigurationError(f"The local encryption key {path} is empty; delete it to have a new one "
                                    "generated (licence numbers encrypted under the old key are then lost).")
    return key


def _write_new_key(path: Path) -> None:
    # written whole to a private temporary file, then linked into place: two processes starting together
    # never see a half-written key, and the second one keeps the first one's key
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(generate_key() + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    except OSError as exc:
        raise KeyConfigurationError(f"Cannot create the local encryption key {path} ({exc.strerror}); "
                                    f"set {KEYS_VARIABLE} instead.") from None
