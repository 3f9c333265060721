"""Flask's cookie sessions, verified with every acceptable Vault version of ``SECRET_KEY``.

:class:`VaultSessionInterface` is Flask's :class:`~flask.sessions.SecureCookieSessionInterface`
(same cookie format, same salt, same serializer: cookies pass both ways) with two changes:

* the keys it verifies with are ``SECRET_KEY``, ``SECRET_KEY_FALLBACKS`` and the older
  Vault versions of ``SECRET_KEY`` this process has already read and that are still
  within the window (see :mod:`flask_vault.signing`);
* a cookie that none of these verifies is tried against the other acceptable older
  versions (read from Vault once each) and, after one throttled re-read of the secret,
  against versions newer than this process knew, before it is refused (an empty session,
  as Flask does).

``init_app`` installs it when the app uses Flask's default interface and ``SECRET_KEY``
comes from a KV v2 secret; an app with its own session interface keeps it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from flask_vault.state import find_state

if TYPE_CHECKING:
    from flask import Request

    from flask_vault.signing import SigningKeys


class VaultSessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions whose keys follow ``SECRET_KEY``'s versions in Vault."""

    #: The last keys a serializer was built for, and that serializer: built again only when
    #: the keys change (Flask's own interface builds one per request).
    _last: tuple[tuple[Any, ...], URLSafeTimedSerializer] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys: list[Any] = []
        signing = _signing_keys(app)
        if signing is not None:
            keys.extend(reversed(signing.known_older()))
        keys.extend(app.config.get("SECRET_KEY_FALLBACKS") or [])
        keys.append(app.secret_key)  # itsdangerous signs with the last key
        last, key_tuple = self._last, tuple(keys)
        if last is not None and last[0] == key_tuple:
            return last[1]
        serializer = self._serializer(keys)
        self._last = (key_tuple, serializer)
        return serializer

    def _serializer(self, keys: list[Any]) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            keys,
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
        )

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        serializer = self.get_signing_serializer(app)
        if serializer is None:
            return None
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        try:
            return self.session_class(serializer.loads(value, max_age=max_age))
        except SignatureExpired:
            return self.session_class()  # a valid signature, too old: no other key helps
        except BadSignature:
            pass
        data = self._load_with_vault_versions(app, value, max_age, serializer)
        return self.session_class(data if data is not None else {})

    def _load_with_vault_versions(
        self, app: Flask, value: str, max_age: int, tried: URLSafeTimedSerializer
    ) -> Any | None:
        signing = _signing_keys(app)
        if signing is None:
            return None
        seen = {str(key) if not isinstance(key, bytes) else key.decode("utf-8", "replace") for key in tried.secret_keys}
        for key in signing.candidates(seen):
            try:
                return self._serializer([key]).loads(value, max_age=max_age)
            except SignatureExpired:
                return None
            except BadSignature:
                continue
        return None


def _signing_keys(app: Flask) -> SigningKeys | None:
    state = find_state(app)
    keyring = state.keyring if state is not None else None
    return keyring.keys("SECRET_KEY") if keyring is not None else None


def install_session_interface(app: Flask) -> bool:
    """Use :class:`VaultSessionInterface` unless the app has a session interface of its own."""
    if type(app.session_interface) is not SecureCookieSessionInterface:
        return isinstance(app.session_interface, VaultSessionInterface)
    app.session_interface = VaultSessionInterface()
    return True
