"""The per-app state and the one function that finds it.

``FlaskVault.init_app`` stores a :class:`VaultState` in ``app.extensions["vault"]``;
everything else reaches it through :func:`get_state` (or :func:`find_state` where an app
without the extension is a normal case), so the key is spelt in one place.
"""

from __future__ import annotations

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
