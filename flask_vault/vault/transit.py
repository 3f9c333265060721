"""Transit: encrypt and decrypt with a key that never leaves Vault (backups use it)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask_vault.errors import VaultError
from flask_vault.vault.translate import answer_part
from flask_vault.vault.transport import Transport


class Transit:
    """The Transit engine, through ``transport``. ``associated_data`` is authenticated, not stored."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def encrypt(self, key: str, plaintext: bytes, *, mount: str = "transit", associated_data: bytes) -> str:
        """The ciphertext (``vault:v1:...``) of ``plaintext`` under ``key``."""
        response = self.transport.request(
            "encrypt",
            f"{mount}/encrypt/{key}",
            lambda: self.transport.hvac.secrets.transit.encrypt_data(
                key,
                plaintext=base64.b64encode(plaintext).decode(),
                associated_data=base64.b64encode(associated_data).decode(),
                mount_point=mount,
            ),
            idempotent=True,
        )
        ciphertext: str = self._part(response, f"{mount}/encrypt/{key}", "data", "ciphertext")
        return ciphertext

    def decrypt(self, key: str, ciphertext: str, *, mount: str = "transit", associated_data: bytes) -> bytes:
        """What :meth:`encrypt` was given; fails if ``associated_data`` differs."""
        response = self.transport.request(
            "decrypt",
            f"{mount}/decrypt/{key}",
            lambda: self.transport.hvac.secrets.transit.decrypt_data(
                key,
                ciphertext=ciphertext,
                associated_data=base64.b64encode(associated_data).decode(),
                mount_point=mount,
            ),
        )
        path = f"{mount}/decrypt/{key}"
        try:
            return base64.b64decode(self._part(response, path, "data", "plaintext"), validate=True)
        except binascii.Error:
            raise VaultError(f"Vault answered {path} with a plaintext that is not base64.", path=path) from None

    def _part(self, response: object, path: str, *keys: str) -> Any:
        return answer_part(response, *keys, kind=str, path=path, url=self.transport.url)
