"""flask-jwt-extended keys that survive a ``JWT_SECRET_KEY`` rotation.

``use_vault_jwt_keys(jwt_manager)`` makes every JWT carry the Vault version of the key
that signed it as its ``kid`` header, and verifies a token with the key of that
version: the current one, or one of the last few kept after a rotation (see
:mod:`flask_vault.refresh`). Tokens signed before a rotation thus stay valid until
their own ``exp``; a token whose ``kid`` names no kept key is checked against the
current key (and fails).

It installs flask-jwt-extended's ``additional_headers_loader``, ``encode_key_loader``
and ``decode_key_loader``; an app that sets these itself should call
:func:`decode_key_for` from its own loader instead.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from flask_vault.state import VaultState, get_state

KID_PREFIX = "vault-v"


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
    if not isinstance(kid, str) or kid == current_kid():
        return current
    refresher = _state().refresher
    for version, key in refresher.previous_jwt_keys if refresher else []:
        if kid == f"{KID_PREFIX}{version}":
            return str(key)
    return current


def use_vault_jwt_keys(jwt_manager: Any) -> None:
    """Install kid-tagged signing and previous-key verification on a ``JWTManager``."""

    @jwt_manager.additional_headers_loader  # type: ignore[untyped-decorator]
    def _headers(identity: Any) -> dict[str, str]:
        kid = current_kid()
        return {"kid": kid} if kid else {}

    @jwt_manager.encode_key_loader  # type: ignore[untyped-decorator]
    def _encode_key(identity: Any) -> str:
        return str(current_app.config["JWT_SECRET_KEY"])

    @jwt_manager.decode_key_loader  # type: ignore[untyped-decorator]
    def _decode_key(header: dict[str, Any], payload: dict[str, Any]) -> str:
        return decode_key_for(header)
