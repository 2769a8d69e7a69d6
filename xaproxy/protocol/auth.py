"""Password checks for the two authentication plugins clients use.

The proxy stores the users' plaintext passwords (from the config), so it can
verify both mysql_native_password and the caching_sha2_password fast path for
any nonce without the RSA/TLS full-authentication exchange. A user may instead be
given as the mysql_native_password hash (`*` + hex of SHA1(SHA1(password)), what
MariaDB's PASSWORD() prints): that proves a native response (the server's own
check), so such a user is always switched to mysql_native_password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from .constants import CACHING_SHA2_PASSWORD, NATIVE_PASSWORD

SUPPORTED_PLUGINS = (NATIVE_PASSWORD, CACHING_SHA2_PASSWORD)

# Scramble bytes are printable, never NUL or '$' (some clients choke on either).
_SCRAMBLE_ALPHABET = bytes(b for b in range(0x21, 0x7F) if b != ord("$"))


def new_scramble() -> bytes:
    return bytes(secrets.choice(_SCRAMBLE_ALPHABET) for _ in range(20))


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def native_response(password: str, scramble: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    stage2 = hashlib.sha1(stage1).digest()
    return _xor(stage1, hashlib.sha1(scramble + stage2).digest())


def caching_sha2_response(password: str, scramble: bytes) -> bytes:
    if not password:
        return b""
    p1 = hashlib.sha256(password.encode()).digest()
    p2 = hashlib.sha256(p1).digest()
    return _xor(p1, hashlib.sha256(p2 + scramble).digest())


def verify(plugin: str, password: str, scramble: bytes, response: bytes) -> bool:
    """True when the client's auth response proves it knows `password`."""
    if plugin == NATIVE_PASSWORD:
        expected = native_response(password, scramble)
    elif plugin == CACHING_SHA2_PASSWORD:
        expected = caching_sha2_response(password, scramble)
    else:
        return False
    # Some clients append a NUL to the response; tolerate it.
    if response.endswith(b"\0") and len(response) == len(expected) + 1:
        response = response[:-1]
    return hmac.compare_digest(expected, response)


def native_hash(password: str) -> str:
    """The mysql_native_password hash of `password`, as MariaDB's PASSWORD() prints it."""
    stage2 = hashlib.sha1(hashlib.sha1(password.encode()).digest()).digest()
    return "*" + stage2.hex().upper()


def verify_native_hash(password_hash: str, scramble: bytes, response: bytes) -> bool:
    """True when a mysql_native_password response proves the password behind `password_hash`.

    response = SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))): XOR with the second
    term gives a candidate SHA1(pw), whose SHA1 must be the stored hash.
    """
    stage2 = bytes.fromhex(password_hash[1:])
    if response.endswith(b"\0") and len(response) == 21:
        response = response[:-1]
    if len(response) != 20:
        return False
    stage1 = _xor(response, hashlib.sha1(scramble + stage2).digest())
    return hmac.compare_digest(hashlib.sha1(stage1).digest(), stage2)
