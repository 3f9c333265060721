"""The per-app state and the one function that finds it.

``FlaskVault.init_app`` stores a :class:`VaultState` in ``app.extensions["vault"]``;
everything else reaches it through :func:`get_state` (or :func:`find_state` where an app
without the extension is a normal case), so the key is spelt in one place.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from flask_vault.client import VaultClient
    from flask_vault.db.logins import DatabaseLogins
    from flask_vault.health.monitor import HealthMonitor
    from flask_vault.mapping import SecretSource
    from flask_vault.refresh import ConfigRefresher
    from flask_vault.settings import VaultSettings
    from flask_vault.signing import Keyring

EXTENSION_KEY = "vault"

#: How ``init_app`` fills the app it is called for (see :func:`load_mode`).
SERVE, CLI, OFFLINE = "serve", "cli", "offline"
LOAD_MODES = (SERVE, CLI, OFFLINE)
_load_mode: ContextVar[str] = ContextVar("flask_vault_load_mode", default=SERVE)


@dataclass
class VaultState:
    """Per-app state, kept in ``app.extensions["vault"]``."""

    settings: VaultSettings
    client: VaultClient
    sources: dict[str, SecretSource] = field(default_factory=dict)
    refresher: ConfigRefresher | None = None
    #: The cached health probe behind /health/vault, `flask vault status` and stats().
    health: HealthMonitor | None = field(default=None, repr=False)
    #: SECRET_KEY and JWT_SECRET_KEY across KV versions (see flask_vault.signing).
    keyring: Keyring | None = field(default=None, repr=False)
    #: Database credentials taken at connect time (see flask_vault.db).
    databases: DatabaseLogins | None = field(default=None, repr=False)
    #: How ``init_app`` filled this app: ``serve``, ``cli`` or ``offline`` (see :func:`load_mode`).
    mode: str = SERVE


def _app(app: Flask | None) -> Flask:
    if app is not None:
        return app
    current: Flask = current_app._get_current_object()  # type: ignore[attr-defined]  # werkzeug LocalProxy API
    return current


def find_state(app: Flask | None = None) -> VaultState | None:
    """The state of ``app`` (default: the current app), or None when FlaskVault is not on it."""
    state: VaultState | None = _app(app).extensions.get(EXTENSION_KEY)
    return state


def get_state(app: Flask | None = None) -> VaultState:
    """The state of ``app`` (default: the current app); RuntimeError when init_app was not called."""
    flask_app = _app(app)
    state = find_state(flask_app)
    if state is None:
        raise RuntimeError(
            f"FlaskVault is not registered on the app {flask_app.name!r}. Did you forget to call vault.init_app(app)?"
        )
    return state


def refuse_second_registration(app: Flask) -> None:
    """RuntimeError when FlaskVault is already registered on ``app``."""
    if EXTENSION_KEY in app.extensions:
        raise RuntimeError(
            f"FlaskVault is already registered on the app {app.name!r}. Call init_app once per app"
            " (with an app factory, create a new app for different settings)."
        )


def set_state(app: Flask, state: VaultState) -> None:
    """Register ``state`` on ``app``; RuntimeError when the extension is already there."""
    refuse_second_registration(app)
    app.extensions[EXTENSION_KEY] = state


# -- how apps are loaded in this context -----------------------------------------------


def load_mode() -> str:
    """How ``init_app`` fills an app loaded in the current context.

    ``serve`` (the default): every mapped key gets a value or ``init_app`` raises, waiting up to
    ``VAULT_STARTUP_TIMEOUT`` for Vault; ``cli``: one quick attempt, a key that gets no value is
    left unset and reported by ``flask vault status``; ``offline``: no request at all, no key
    filled. Only the ``flask vault`` command group sets ``cli`` or ``offline``, before Flask's
    CLI loads the app (see :mod:`flask_vault.cli`); a server never does.
    """
    return _load_mode.get()


def set_load_mode(mode: str) -> Token[str]:
    """Make apps loaded from now on in this context load in ``mode``; reset with the returned token."""
    if mode not in LOAD_MODES:
        raise ValueError(f"load mode must be one of {', '.join(LOAD_MODES)}, got {mode!r}")
    return _load_mode.set(mode)


def reset_load_mode(token: Token[str]) -> None:
    _load_mode.reset(token)
