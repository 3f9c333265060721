"""flask-jwt-extended keys that survive a ``JWT_SECRET_KEY`` rotation, in every process.

``use_vault_jwt_keys(jwt_manager)`` makes every JWT carry the Vault version of the key
that signed it as its ``kid`` header (``vault-v<N>``), and verifies a token with the key
of exactly that version: the current one, an older one still within the window
(``VAULT_SIGNING_KEY_WINDOW``), read from Vault once per version per process, or a newer
one that another process has already seen (one throttled re-read of the secret finds it).
A process that started after a rotation, or has not seen it yet, thus accepts every token
its peers signed. See :mod:`flask_vault.signing` for the window and the bounds on reads.

A token without a ``kid``, or whose ``kid`` names no acceptable version, is checked
against the current key (and fails unless the current key signed it).

It installs flask-jwt-extended's ``additional_headers_loader``, ``encode_key_loader``
and ``decode_key_loader``; an app that sets these itself should call
:func:`decode_key_for` from its own loader instead.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g

from flask_vault.signing import KID_PREFIX, parse_kid
from flask_vault.state import VaultState, get_state

__all__ = ["KID_PREFIX", "current_kid", "decode_key_for", "use_vault_jwt_keys"]


def _state() -> VaultState:
    return get_state()


def current_kid() -> str | None:
    source = _state().sources.get("JWT_SECRET_KEY")
    if source is None or source.origin != "vault" or source.version is None:
        return None
    return f"{KID_PREFIX}{source.version}"


def decode_key_for(header: dict[str, Any]) -> str:
    """The key that verifies a token with this (unverified) header."""
    current: str = current_app.config["JWT_SECRET_KEY"]
    kid = header.get("kid")
    state = _state()
    keys = state.keyring.keys("JWT_SECRET_KEY") if state.keyring is not None else None
    version = parse_kid(kid)
    if keys is not None and version is not None:
        # By version even for the current one: JWT_SECRET_KEY may be mid-swap during a refresh.
        return keys.for_version(version) or current
    if not isinstance(kid, str) or kid == current_kid():
        return current
    refresher = state.refresher  # a KV v1 secret: the previous keys this process has seen
    for previous, key in refresher.previous_jwt_keys if refresher else []:
        if kid == f"{KID_PREFIX}{previous}":
            return str(key)
    return current


def _signing_key() -> tuple[str | None, str]:
    """(kid, key) to sign with, both from the one cached KV version the keyring sees now.

    The ``kid`` and the key must name the same version even while a refresh swaps
    ``JWT_SECRET_KEY``, or the token could never be verified.
    """
    keyring = _state().keyring
    keys = keyring.keys("JWT_SECRET_KEY") if keyring is not None else None
    current = keys.secret.current() if keys is not None else None
    if keys is not None and current is not None and current.data is not None and current.data.get(keys.field):
        return f"{KID_PREFIX}{current.version}", str(current.data[keys.field])
    return current_kid(), str(current_app.config["JWT_SECRET_KEY"])


def use_vault_jwt_keys(jwt_manager: Any) -> None:
    """Install kid-tagged signing and versioned-key verification on a ``JWTManager``."""

    # flask-jwt-extended asks for the headers, then for the key, of each token it encodes:
    # the key is the one of the version chosen for the headers.
    @jwt_manager.additional_headers_loader  # type: ignore[untyped-decorator]
    def _headers(identity: Any) -> dict[str, str]:
        kid, key = _signing_key()
        g._vault_jwt_signing = key
        return {"kid": kid} if kid else {}

    @jwt_manager.encode_key_loader  # type: ignore[untyped-decorator]
    def _encode_key(identity: Any) -> str:
        key = g.pop("_vault_jwt_signing", None)
        return str(key) if key is not None else _signing_key()[1]

    @jwt_manager.decode_key_loader  # type: ignore[untyped-decorator]
    def _decode_key(header: dict[str, Any], payload: dict[str, Any]) -> str:
        return decode_key_for(header)
