"""Encryption at rest: AES-256-GCM with a key from an environment variable or a 0600 key file."""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from memory_node.files import publish, remove, temporary

KEY_BYTES = 32
NONCE_BYTES = 12


class MemoryKeyError(Exception):
    """The encryption key is missing, malformed, unsafe, or does not open this store."""


class WrongKeyError(MemoryKeyError):
    """The key decrypts nothing in this store (it was written with another key)."""


def _decode(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MemoryKeyError(f"{source}: not valid base64 ({exc})") from exc
    if len(key) != KEY_BYTES:
        raise MemoryKeyError(f"{source}: decodes to {len(key)} bytes, an AES-256 key needs {KEY_BYTES}")
    return key


def new_key_text() -> str:
    """A fresh random key as base64 text (for the key file or the environment variable)."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def load_key(key_file: Path, env_var: str, *, create: bool) -> bytes:
    """The key from `env_var` if set, else from `key_file`; created there (mode 0600) when `create`.

    An existing key file readable by group or others is refused, as ssh does for private keys. A new
    key file appears complete or not at all (memory_node.files).
    """
    if os.environ.get(env_var):
        return _decode(os.environ[env_var], f"environment variable {env_var}")
    if key_file.exists():
        mode = stat.S_IMODE(key_file.stat().st_mode)
        if mode & 0o077:
            raise MemoryKeyError(
                f"key file {key_file} is accessible by other users (mode {mode:04o}); "
                f"run: chmod 600 {key_file}"
            )
        return _decode(key_file.read_text(), f"key file {key_file}")
    if not create:
        raise MemoryKeyError(
            f"no key: the memory store exists but neither {env_var} is set nor {key_file} exists. "
            f"Restore the key the store was written with; a new key cannot open it."
        )
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    built = temporary(key_file)  # a kill while writing must not leave an empty or partial key file
    remove(built)
    text = new_key_text()
    with os.fdopen(os.open(built, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text + "\n")
    publish(built, key_file)
    return _decode(text, f"key file {key_file}")


class Cipher:
    """AES-GCM with a random nonce per message; `context` (e.g. person id + field) is authenticated,
    so a ciphertext moved to another row or field fails to decrypt."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise WrongKeyError(f"cannot decrypt {context}: wrong key or tampered data") from exc
