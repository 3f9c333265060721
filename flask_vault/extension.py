"""FlaskVault: fill an app's secret config keys from Vault at start-up.

``init_app`` reads the settings once, builds the app's :class:`VaultClient`, reads each
distinct secret path once and fills the mapped config keys (``VAULT_SECRETS``) in this
order: the Vault value, then (with ``VAULT_FALLBACK_ENV``) an environment variable, then
a value already in ``app.config``. Where each key came from is recorded in
``vault.sources``; values never are.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from flask import Flask

from flask_vault import jitter
from flask_vault.auth.methods import authenticator_from_settings
from flask_vault.cache import CachedSecret
from flask_vault.client import VaultClient
from flask_vault.errors import SecretNotFoundError, VaultConfigError, VaultError, VaultUnavailableError
from flask_vault.mapping import DATABASE_KEY, SecretSource, keys_by_name, parse_references, value_for
from flask_vault.ops.backup import default_backup_dir
from flask_vault.paths import check_secret_name
from flask_vault.refresh import ChangeCallback, ConfigRefresher
from flask_vault.settings import CREDENTIAL_KEYS, FALLBACK_ENV_NAMES, VaultSettings, warn_unknown_settings
from flask_vault.state import CLI, OFFLINE, VaultState, get_state, load_mode, refuse_second_registration, set_state
from flask_vault.vault.translate import path_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from flask_vault.db.credentials import Credentials
    from flask_vault.db.engines import DatabaseLogin
    from flask_vault.db.lease import LeaseCredentials
    from flask_vault.db.logins import DatabaseLogins

log = logging.getLogger(__name__)

#: Seconds between start-up reads while Vault is unavailable (plus up to half of it, at random).
STARTUP_RETRY = 0.5


class FlaskVault:
    """The Flask extension. ``FlaskVault(app)`` or ``vault.init_app(app)`` in a factory."""

    def __init__(self, app: Flask | None = None) -> None:
        # Callbacks are not app-bound: each runs for every app this extension serves.
        self._change_callbacks: dict[str, list[ChangeCallback]] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read settings, log in, fill the mapped config keys, register routes and commands.

        A bad setting (``VAULT_ROTATION`` included) raises :class:`VaultConfigError` here.
        The app's client backs up to ``VAULT_BACKUP_DIR``, else ``<instance folder>/vault-backups``.
        """
        refuse_second_registration(app)
        warn_unknown_settings(app.config, os.environ)  # a misspelt VAULT_* name would otherwise be ignored silently
        settings = VaultSettings.load(app.config, os.environ, default_prefix=app.name)
        authenticator = authenticator_from_settings(settings)  # checks the login settings
        settings = settings.without_login_credentials()  # from here on only the authenticator holds them
        backup_dir = default_backup_dir(settings, app.instance_path)
        client = VaultClient.from_settings(settings, authenticator=authenticator, backup_dir=backup_dir)
        state = VaultState(settings=settings, client=client, mode=load_mode())
        self._remove_credentials(app)
        state.databases = _database_logins(state)
        if state.mode != OFFLINE:  # `flask vault policy` needs the settings only: no request at all
            lenient = state.mode == CLI
            login_error = log_in(client, quiet=lenient)
            state.sources = fill_config(app.config, state, lenient=lenient, login_error=login_error)
        set_state(app, state)
        _use_vault_signing_keys(app, state)
        _use_connect_time_credentials(app, state)
        self._start_health_and_metrics(app, state)
        self._start_live_refresh(app, state)
        self._register(app, settings)
        # A preloading gunicorn master stops here: only requests after this count as a use of
        # the token, so after its first fork it revokes a token it logged in for (renewal.py).
        client.keeper.start_up_done()

    def _start_live_refresh(self, app: Flask, state: VaultState) -> None:
        grouped = keys_by_name(state.settings.secrets)
        leased = {key for key, source in state.sources.items() if source.lease is not None}
        for name in list(grouped):  # a key filled from a database lease follows the lease, not the secret
            grouped[name] = [(key, field_name) for key, field_name in grouped[name] if key not in leased]
            if not grouped[name]:
                del grouped[name]
        refresher = ConfigRefresher(app, state, grouped, self._change_callbacks)
        state.refresher = refresher
        state.client.cache.add_listener(refresher.on_cache_update)
        if state.settings.live_refresh:
            app.before_request(refresher.touch)

    @staticmethod
    def _start_health_and_metrics(app: Flask, state: VaultState) -> None:
        from flask_vault.health.monitor import HealthMonitor
        from flask_vault.observe.metrics import track

        state.health = HealthMonitor(state)
        track(app.name, state)  # Prometheus export, when prometheus_client is installed

    def on_change(self, name: str, callback: ChangeCallback | None = None) -> Any:
        """Call ``callback(change)`` when the secret ``name`` gets a new version ("*": any).

        Usable as ``vault.on_change("flask", cb)`` or as a ``@vault.on_change("flask")``
        decorator. ``change`` is a :class:`SecretChange` (names and versions, no values).
        """
        if name != "*":
            check_secret_name(name)

        def register(func: ChangeCallback) -> ChangeCallback:
            self._change_callbacks.setdefault(name, []).append(func)
            return func

        return register if callback is None else register(callback)

    @staticmethod
    def _remove_credentials(app: Flask) -> None:
        """Credentials leave ``app.config`` once read: the authenticator holds the login ones, the settings
        the health token. A config dump, a debug page or an error tracker then finds none of them."""
        for key in CREDENTIAL_KEYS:
            app.config.pop(key, None)

    @staticmethod
    def _register(app: Flask, settings: VaultSettings) -> None:
        from flask_vault.cli import vault_cli
        from flask_vault.health import view

        if settings.health_url is not None:
            view.register(app, settings.health_url)
        app.cli.add_command(vault_cli)

    # -- the current app's state -------------------------------------------------------

    @staticmethod
    def _get_state() -> VaultState:
        return get_state()

    @property
    def client(self) -> VaultClient:
        """The :class:`VaultClient` of ``current_app``."""
        return self._get_state().client

    @property
    def settings(self) -> VaultSettings:
        return self._get_state().settings

    @property
    def sources(self) -> dict[str, SecretSource]:
        """Config key -> where its value came from (Vault path and version, env or config)."""
        return dict(self._get_state().sources)

    def attach_engine(
        self, engine: Engine, secret: str | None = None, *, role: str | None = None, app: Flask | None = None
    ) -> DatabaseLogin:
        """Make a SQLAlchemy ``engine`` log in with the current credentials of a database secret or role.

        Each new connection then takes the user name and password of ``secret`` (default:
        the one behind ``SQLALCHEMY_DATABASE_URI``) when it opens; a login the database
        refuses makes one read-through of the secret and one retry. With ``role`` (default
        ``VAULT_DATABASE_ROLE`` when it is set and no ``secret`` is given), they are the
        credentials of that database secrets engine role, renewed and switched under the
        engine's pool (see the README's "Dynamic database credentials").
        Flask-SQLAlchemy's engines are attached by ``init_app`` already. ``app``: default
        the current app.
        """
        state = get_state(app)
        assert state.databases is not None
        return state.databases.attach(engine, secret, role=role)

    def get_secret(self, name: str, field: str | None = None, fallback_env: str | None = None) -> Any:
        return self.client.get_secret(name, field, fallback_env)

    @staticmethod
    def loaded_for_cli(app: Flask) -> bool:
        """True when ``app`` was loaded for a ``flask vault`` command, which never serves it.

        Its mapped keys may then have no value (a secret that does not exist yet, Vault
        down): a factory that hands one to another extension right away (Flask-SQLAlchemy
        needs ``SQLALCHEMY_DATABASE_URI``) can skip that part, e.g.
        ``if vault.loaded_for_cli(app): return app`` after ``vault.init_app(app)``.
        """
        return get_state(app).mode in (CLI, OFFLINE)

    def stats(self) -> dict[str, Any]:
        """Counters of ``current_app``'s Vault use: requests by operation and outcome, cache,
        logins, renewals, health probes (see docs/health.md). No values, no tokens."""
        from flask_vault.observe.metrics import collect_stats

        return collect_stats(self._get_state())


def _use_vault_signing_keys(app: Flask, state: VaultState) -> None:
    """Signing keys that follow their KV versions, and cookie sessions that use them."""
    from flask_vault.sessions import install_session_interface
    from flask_vault.signing import Keyring, window_for

    lifetime = app.permanent_session_lifetime.total_seconds()
    state.keyring = Keyring(state, window_for(state.settings.signing_key_window, lifetime, state.settings.cache_ttl))
    if state.keyring.handles("SECRET_KEY") and not install_session_interface(app):
        log.info(
            "The app has its own session interface (%s); sessions are verified with SECRET_KEY and"
            " SECRET_KEY_FALLBACKS only, not with older Vault versions.",
            type(app.session_interface).__name__,
        )


def _database_logins(state: VaultState) -> DatabaseLogins:
    from flask_vault.db.logins import DatabaseLogins

    return DatabaseLogins(state.client, state.settings)


def _use_connect_time_credentials(app: Flask, state: VaultState) -> None:
    """Engines log in with the database secret's (or role's) current credentials, not their start-up URL."""
    from flask_vault.db.flask_sqlalchemy import follow_flask_sqlalchemy

    assert state.databases is not None
    follow_flask_sqlalchemy(app, state.databases)


def log_in(client: VaultClient, *, quiet: bool = False) -> VaultError | None:
    """Log in before the first secret is read (the keeper then renews and logs in again).

    A failure is only logged (at INFO when ``quiet``: ``flask vault status`` reports it) and
    returned: the reads that follow report it through the usual fallback and fail-fast
    rules, naming each key.
    """
    try:
        client.keeper.start()
    except VaultError as exc:
        level = logging.INFO if quiet else logging.WARNING
        log.log(level, "Vault login with %s failed: %s", client.keeper.method, exc.message)
        return exc
    return None


# -- filling config --------------------------------------------------------------------

#: Errors that every further read would meet too, after a wait: a lenient fill stops asking after one.
_SHARED_FAILURES = (VaultUnavailableError,)


def fill_config(
    config: dict[str, Any], state: VaultState, *, lenient: bool = False, login_error: VaultError | None = None
) -> dict[str, SecretSource]:
    """Fill every key of ``VAULT_SECRETS`` in ``config``; return each key's source.

    ``lenient`` (an app loaded for a ``flask vault`` command): no waiting for Vault, a key
    without a value is left unset instead of stopping start-up, and once Vault is found
    unreachable or refuses the login, the remaining secrets are not asked for.
    """
    settings, client = state.settings, state.client
    references = parse_references(settings.secrets)
    deadline = time.monotonic() + (0 if lenient else settings.startup_timeout)
    shared = login_error if lenient and isinstance(login_error, _SHARED_FAILURES) else None
    reads: dict[str, CachedSecret | VaultError] = {}
    sources: dict[str, SecretSource] = {}
    for key, (name, field_name) in references.items():
        if name not in reads and shared is not None:
            reads[name] = _not_asked(shared, client.full_path(name), settings.url)
        elif name not in reads:
            reads[name] = _read_at_startup(client, name, deadline)
            if lenient and isinstance(reads[name], _SHARED_FAILURES):
                shared = reads[name]  # type: ignore[assignment]
        lease = state.databases.lease_for_key(key) if state.databases is not None and field_name is None else None
        if lease is not None:
            sources[key] = _fill_leased_url(
                config, key, client.full_path(name), reads[name], lease, state, deadline, lenient=lenient
            )
        else:
            sources[key] = _fill_key(config, key, name, field_name, reads[name], state, lenient=lenient)
    lease = state.databases.lease_for_key(DATABASE_KEY) if state.databases is not None else None
    if lease is not None and DATABASE_KEY not in references:
        missing = (
            _not_asked(shared, lease.path, settings.url)
            if shared is not None
            else SecretNotFoundError("SQLALCHEMY_DATABASE_URI is not mapped in VAULT_SECRETS.")
        )
        sources[DATABASE_KEY] = _fill_leased_url(
            config, DATABASE_KEY, None, missing, lease, state, deadline, lenient=lenient
        )
    return sources


def _not_asked(shared: VaultError, path: str, url: str) -> VaultError:
    """Why ``path`` was not read: Vault was found unavailable (or the login failed) just before.

    Each key's message names its own path; the first failure's message says the rest.
    """
    error = VaultUnavailableError(
        f"{path} was not asked for, as Vault at {shared.url or url} was found unavailable just before:"
        f" {shared.message}",
        url=shared.url or url,
        mount=shared.mount,
        path=path,
        status=shared.status,
    )
    error.retry_after = getattr(shared, "retry_after", None)
    error.__cause__ = shared
    return error


def _read_at_startup(client: VaultClient, name: str, deadline: float) -> CachedSecret | VaultError:
    """Read once; while Vault is unavailable, keep trying until ``deadline``.

    The waits are spread at random (and never shorter than a 429's ``Retry-After``), so
    processes started together that all found Vault down do not come back together.
    """
    while True:
        try:
            return client.read(name)
        except VaultUnavailableError as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return exc
            log.info("Vault is not available yet (%s); retrying for %.0fs more.", exc.message, remaining)
            wait = exc.retry_after if exc.retry_after is not None else STARTUP_RETRY
            time.sleep(min(wait + jitter.up_to(max(wait, STARTUP_RETRY) * 0.5), remaining))
        except VaultError as exc:
            return exc


def _fill_key(
    config: dict[str, Any],
    key: str,
    name: str,
    field_name: str | None,
    read: CachedSecret | VaultError,
    state: VaultState,
    *,
    lenient: bool = False,
) -> SecretSource:
    client = state.client
    path = client.full_path(name)
    vault_error: VaultError | None = read if isinstance(read, VaultError) else None
    if isinstance(read, CachedSecret):
        try:
            config[key] = value_for(read, field_name, client)
            return SecretSource(key, "vault", path=path, field=field_name, version=read.version)
        except VaultError as exc:
            vault_error = exc
    assert vault_error is not None
    return _fall_back(config, key, path, field_name, vault_error, state, lenient=lenient)


def _fill_leased_url(
    config: dict[str, Any],
    key: str,
    path: str | None,
    read: CachedSecret | VaultError,
    lease: LeaseCredentials,
    state: VaultState,
    deadline: float,
    *,
    lenient: bool = False,
) -> SecretSource:
    """A database URL whose address comes from the secret (or, with none, the URL already in
    ``config``) and whose login comes from a database secrets engine role, kept current."""
    from flask_vault.database import connection_url, with_login, without_login

    base: str | None = None
    vault_error: VaultError | None = None
    address = SecretSource(key, "vault", lease=lease.path)
    if isinstance(read, CachedSecret):
        try:
            base = connection_url(read.data, path=read.path)
            address = SecretSource(key, "vault", path=read.path, version=read.version, lease=lease.path)
        except VaultError as exc:
            vault_error = exc
    elif isinstance(read, SecretNotFoundError) and isinstance(config.get(key), str) and config[key]:
        base = without_login(config[key])  # the address from the settings: "or settings"
    elif isinstance(read, SecretNotFoundError):
        vault_error = VaultConfigError(
            f"{lease.setting} needs the database's address: a secret with host, port, database (and driver)"
            f" mapped to {key} ({path or 'none is'}: {read.message}), or a {key} without credentials in the"
            " app's config.",
            key=lease.setting,
        )
    else:
        vault_error = read
    if base is not None:
        try:
            login = _lease_at_startup(lease, deadline)
        except VaultError as exc:
            vault_error = exc
        else:
            url = base

            def follow(credentials: Credentials) -> None:
                config[key] = with_login(url, credentials.username, credentials.password)

            lease.on_switch(follow)
            follow(login)
            return address
    assert vault_error is not None
    return _fall_back(config, key, path or lease.path, None, vault_error, state, lenient=lenient)


def _lease_at_startup(lease: LeaseCredentials, deadline: float) -> Credentials:
    """The lease's first credentials; while Vault is unavailable, keep trying until ``deadline``."""
    while True:
        try:
            return lease.obtain()  # filling config is no use of the lease (a preloading master does only this)
        except VaultUnavailableError as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            log.info("Vault is not available yet (%s); retrying for %.0fs more.", exc.message, remaining)
            time.sleep(min(0.5, remaining))


def _fall_back(
    config: dict[str, Any],
    key: str,
    path: str,
    field_name: str | None,
    vault_error: VaultError,
    state: VaultState,
    *,
    lenient: bool = False,
) -> SecretSource:
    """Vault gave no value for ``key``: the environment variable, then ``config``, then fail fast."""
    settings = state.settings
    quiet = logging.INFO if lenient else logging.WARNING  # under `flask vault`, status reports it
    env_var = FALLBACK_ENV_NAMES.get(key, key)
    if settings.fallback_env and os.environ.get(env_var):
        config[key] = os.environ[env_var]
        log.log(quiet, "%s comes from the environment variable %s: %s", key, env_var, vault_error.message)
        return SecretSource(key, "env", path=path, field=field_name, env_var=env_var, vault_error=vault_error.message)
    if config.get(key) not in (None, ""):
        log.log(quiet, "%s keeps the value already in app.config: %s", key, vault_error.message)
        return SecretSource(key, "config", path=path, field=field_name, vault_error=vault_error.message)
    if settings.fail_fast and not lenient:
        raise _no_value_error(key, path, field_name, env_var, settings, vault_error)
    log.log(logging.INFO if lenient else logging.ERROR, "%s has no value: %s", key, vault_error.message)
    return SecretSource(key, "missing", path=path, field=field_name, vault_error=vault_error.message)


def _no_value_error(
    key: str, path: str, field_name: str | None, env_var: str, settings: VaultSettings, cause: VaultError
) -> VaultError:
    where = f"{path}#{field_name}" if field_name else path
    fallback = (
        f"the environment variable {env_var} is not set" if settings.fallback_env else "VAULT_FALLBACK_ENV is off"
    )
    missing = isinstance(cause, SecretNotFoundError) and cause.status == 404  # no secret at all at that path
    if missing:
        reason = (
            f"there is no secret at that path on {cause.url or settings.url}; the path is built from"
            f" {path_settings(settings.mount_point, settings.path_prefix, settings.environment)}"
        )
        flask = _flask_command()
        name = _secret_name(path, settings)
        put = f", `{flask} vault put {name}` this one" if name else ""
        advice = (
            f"Create it first: `{flask} vault init` creates every secret the app maps{put} (or, if it lives"
            " elsewhere, fix those settings); only to start without it, set VAULT_FAIL_FAST=false."
        )
    else:
        reason = cause.message
        advice = "Fix that first; only to start without it, set VAULT_FAIL_FAST=false."
    message = (
        f"Cannot fill {key}: Vault gave no value at {where} ({reason}), {fallback}, and app.config has no {key}."
        f" The app will not start with an empty secret. {advice}"
    )
    error = type(cause)(message) if not isinstance(cause, VaultConfigError) else VaultError(message)
    error.url, error.mount, error.path, error.status = cause.url, cause.mount, path, cause.status
    error.__cause__ = cause
    return error


def _secret_name(path: str, settings: VaultSettings) -> str | None:
    """The secret name in ``path`` (``secret/app/production/flask``: ``flask``), None for another path."""
    folder = "/".join(p for p in (settings.mount_point, settings.path_prefix, settings.environment) if p) + "/"
    return path[len(folder) :] if path.startswith(folder) else None


def _flask_command() -> str:
    """``flask --app X`` as this process was started by Flask's CLI; with a placeholder under another server."""
    import click
    from flask.cli import ScriptInfo

    context = click.get_current_context(silent=True)
    info = context.find_object(ScriptInfo) if context is not None else None
    if info is not None:  # `flask run` (without --app, Flask finds the app the same way again)
        return f"flask --app {info.app_import_path}" if info.app_import_path else "flask"
    found = os.environ.get("FLASK_APP")
    return f"flask --app {found}" if found else "flask --app <app>"
