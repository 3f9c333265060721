"""The settings table, generated from ``flask_vault.settings`` so that it cannot drift.

What comes from the code: which settings exist (the spec table, plus the keys that
``VaultSettings.load`` reads outside it, such as ``VAULT_CACERT``), each one's
environment variables (the key and its aliases, such as ``VAULT_ADDR``), its default
(the ``VaultSettings`` field it fills), the kind of value (its parser) and whether it
holds a credential, and the prose of a setting that has a ``description`` there. What
lives here: one sentence of prose for the others, each setting's group, and the words
for a default that is computed rather than written (``app.name``).

A setting without prose here, or prose for a setting the code does not have, is a
warning, which ``make docs`` (``-W``) turns into a failed build.

Use it in a page as (in a Markdown page, inside an ``{eval-rst}`` block, since its
output is reStructuredText)::

    .. vault-settings::
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from flask_vault import settings as settings_module
from flask_vault.auth.methods import AUTH_METHODS  # the login methods' registry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Note:
    group: str
    #: ``{code_default}`` in it is replaced by the field's default, formatted.
    text: str
    #: Shown instead of the field's default when that default is computed or a container.
    default: str | None = None
    #: Shown instead of the kind derived from the parser.
    kind: str | None = None


GROUPS = (
    "Connection",
    "Secrets",
    "Resilience",
    "Health",
    "Login",
    "Rotation and backups",
    "Dynamic database credentials",
)

NOTES: dict[str, Note] = {
    # Connection
    "VAULT_URL": Note(
        "Connection",
        "Vault address. Several addresses, comma-separated, fail over in order.",
        default="``http://127.0.0.1:8200``",
    ),
    "VAULT_NAMESPACE": Note("Connection", "Vault Enterprise / OpenBao namespace."),
    # TLS: the prose is each setting's description in flask_vault/settings.py.
    "VAULT_CACERT": Note("Connection", "", default="certifi's CA bundle", kind="file path"),
    "VAULT_CAPATH": Note("Connection", "", kind="directory path"),
    "VAULT_CLIENT_CERT": Note("Connection", "", kind="file path"),
    "VAULT_CLIENT_KEY": Note("Connection", "", kind="file path"),
    "VAULT_TLS_SERVER_NAME": Note("Connection", "", default="the host in ``VAULT_URL``", kind="host name"),
    "VAULT_SKIP_VERIFY": Note("Connection", "", kind="boolean"),
    "VAULT_ALLOW_INSECURE": Note("Connection", "", kind="boolean"),
    "VAULT_TIMEOUT": Note("Connection", "Connect and read timeout of each request."),
    "VAULT_MOUNT_POINT": Note("Connection", "The KV mount; KV v1 or v2 is detected."),
    "VAULT_PATH_PREFIX": Note(
        "Connection",
        "First part of every secret path: ``<mount>/<prefix>/<environment>/<name>``.",
        default="``app.name`` in an app, none outside",
    ),
    "VAULT_ENVIRONMENT": Note("Connection", "Second part of every secret path (``production``, ``staging``, ...)."),
    # Secrets
    "VAULT_SECRETS": Note(
        "Secrets",
        "Config key to ``name#field``, or a bare ``name`` for a database URL built from the secret."
        " Your mapping replaces the default one.",
        default="``SECRET_KEY``, ``JWT_SECRET_KEY``, ``SQLALCHEMY_DATABASE_URI`` (see :doc:`secrets`)",
    ),
    "VAULT_FALLBACK_ENV": Note("Secrets", "Fall back to the environment variable of the same name as the config key."),
    "VAULT_FAIL_FAST": Note("Secrets", "Refuse to start when a mapped key has no value anywhere."),
    "VAULT_CACHE_TTL": Note("Secrets", "How long a read secret is served from memory; ``0`` disables the cache."),
    "VAULT_LIVE_REFRESH": Note("Secrets", "Mapped config keys follow new secret versions without a restart."),
    # Resilience
    "VAULT_MAX_RETRIES": Note(
        "Resilience", "Retries of connection errors, 429, 412 and 5xx (not 501), with jittered backoff."
    ),
    "VAULT_STARTUP_TIMEOUT": Note("Resilience", "How long ``init_app`` waits for a Vault that is not up yet."),
    "VAULT_STALE_MAX_AGE": Note(
        "Resilience", "How long a cached value may be served while Vault is unavailable; ``0`` disables."
    ),
    "VAULT_FAIL_CLOSED": Note(
        "Resilience", "Past ``VAULT_STALE_MAX_AGE``, answer requests with 503 instead of running on old values."
    ),
    # Health
    "VAULT_HEALTH_URL": Note("Health", "Where the health endpoint is registered; ``None`` disables it."),
    "VAULT_HEALTH_CACHE_SECONDS": Note("Health", "One Vault probe per window; also the ``Cache-Control`` max-age."),
    "VAULT_HEALTH_DETAILS": Note("Health", "Show the details to everyone (only on an internal listener)."),
    "VAULT_HEALTH_TOKEN": Note(
        "Health", "Bearer token that unlocks the details; compared in constant time; removed from ``app.config``."
    ),
    # Login
    "VAULT_AUTH_METHOD": Note("Login", "The login method.", default="inferred from the settings present"),
    "VAULT_TOKEN": Note("Login", "A token given as is; removed from ``app.config`` after start-up."),
    "VAULT_TOKEN_FILE": Note("Login", "A file holding the token (an Agent sink), read again when it changes."),
    "VAULT_ROLE_ID": Note("Login", "AppRole role_id, half of the login; removed from ``app.config`` after login."),
    "VAULT_SECRET_ID": Note("Login", "AppRole secret_id; removed from ``app.config`` after login."),
    "VAULT_SECRET_ID_FILE": Note("Login", "A file holding the AppRole secret_id, read at every login."),
    "VAULT_WRAPPED_SECRET_ID": Note(
        "Login", "A response-wrapping token holding the secret_id; checked, then unwrapped once."
    ),
    "VAULT_ROLE_NAME": Note("Login", "The AppRole name a wrapped secret_id must have been created for."),
    "VAULT_APPROLE_MOUNT": Note("Login", "Where the AppRole auth method is mounted."),
    "VAULT_JWT_ROLE": Note("Login", "JWT/OIDC role to log in with (CI OIDC tokens)."),
    "VAULT_JWT": Note("Login", "The JWT itself; removed from ``app.config`` after login."),
    "VAULT_JWT_FILE": Note("Login", "A file holding the JWT, read at every login."),
    "VAULT_JWT_MOUNT": Note("Login", "Where the JWT auth method is mounted."),
    "VAULT_K8S_ROLE": Note("Login", "Kubernetes auth role."),
    "VAULT_K8S_MOUNT": Note("Login", "Where the Kubernetes auth method is mounted."),
    "VAULT_K8S_TOKEN_FILE": Note(
        "Login",
        "The pod's service-account token, read at every login; by default {code_default}.",
        default="the service-account token",
    ),
    "VAULT_REVOKE_ON_EXIT": Note(
        "Login",
        "Revoke the token at interpreter exit; ``true`` also revokes a ``VAULT_TOKEN``.",
        default="on for tokens it logged in for",
    ),
    # Rotation and backups
    "VAULT_ROTATION": Note(
        "Rotation and backups",
        "Per secret: the fields to rotate, with length, alphabet or generator; checked at start-up.",
        default="``flask``: ``secret_key``, ``jwt_secret``; ``database``: ``password``",
    ),
    "VAULT_BACKUP_DIR": Note(
        "Rotation and backups",
        "Where backup files go; every write backs up here first. Created 0700; an existing one that is a"
        " symlink, another user's or open to group or others is refused.",
        default="``<instance>/vault-backups``; outside an app ``~/.local/state/flask-vault/vault-backups``",
    ),
    "VAULT_BACKUP_TRANSIT_KEY": Note(
        "Rotation and backups",
        "Transit key that encrypts backup files; without it they hold plaintext, with a warning.",
    ),
    "VAULT_TRANSIT_MOUNT": Note("Rotation and backups", "Where the Transit engine is mounted."),
    "VAULT_SIGNING_KEY_WINDOW": Note(
        "Rotation and backups",
        "How long a replaced ``SECRET_KEY`` / ``JWT_SECRET_KEY`` version stays accepted, counted from the"
        " next version's creation, plus ``VAULT_CACHE_TTL`` (sizing: the Rotation page).",
        default="``PERMANENT_SESSION_LIFETIME``",
    ),
    "VAULT_DATABASE_BINDS": Note(
        "Rotation and backups",
        "Flask-SQLAlchemy bind key to the database secret its connections take their credentials from;"
        " the default bind follows ``SQLALCHEMY_DATABASE_URI``.",
        default="none",
    ),
    # Dynamic database credentials
    "VAULT_DATABASE_ROLE": Note(
        "Dynamic database credentials",
        "A role of Vault's database secrets engine: ``SQLALCHEMY_DATABASE_URI`` logs in as its users"
        " (``<mount>/creds/<role>``, renewed and switched under the live pool) or, for a static role, with"
        " the password Vault rotates (see the Dynamic database credentials page).",
        default="none (the KV secret's login)",
    ),
    "VAULT_DATABASE_MOUNT": Note("Dynamic database credentials", "Where the database secrets engine is mounted."),
    "VAULT_DATABASE_BIND_ROLES": Note(
        "Dynamic database credentials",
        "Flask-SQLAlchemy bind key to a database secrets engine role of its own.",
        default="none",
    ),
    "VAULT_DATABASE_GRACE": Note(
        "Dynamic database credentials",
        "After a switch, how long the previous credentials live on (connections checked out finish their"
        " work) before their lease is revoked; never past the lease's own end.",
    ),
    "VAULT_DATABASE_WARN_TTL": Note(
        "Dynamic database credentials",
        "Health warns when the lease has less than this left (it could not be renewed for a while).",
        default="a quarter of the lease's TTL",
    ),
}

#: The kind of value each parser in flask_vault.settings accepts.
KINDS = {
    "parse_urls": "URL, or several comma-separated",
    "parse_optional_str": "string",
    "_str_required": "string",
    "parse_bool": "boolean",
    "_optional_bool": "boolean",
    "_seconds": "seconds",
    "_positive_seconds": "seconds (> 0)",
    "_count": "whole number",
    "parse_secrets_mapping": "mapping (JSON in the environment)",
    "parse_mapping": "mapping (JSON in the environment)",
    "parse_auth_method": "one of " + ", ".join(f"``{m}``" for m in AUTH_METHODS),
    "parse_health_url": "URL path, or ``None``",
    "_optional_seconds": "seconds",
    "parse_binds": "mapping (JSON in the environment)",
    "parse_path": "file path",
    "_path_required": "file path",
    "parse_file": "file path",
    "parse_directory": "directory path",
    "parse_server_name": "host name",
}

_QUOTED_KEY = re.compile(r"[\"'](VAULT_[A-Z][A-Z0-9_]*)[\"']")


@dataclass(frozen=True)
class Row:
    key: str
    environment: tuple[str, ...]
    default: str
    kind: str
    credential: bool
    group: str
    text: str


def _specs() -> tuple[Any, ...]:
    return tuple(settings_module._SPECS)


def direct_keys() -> list[str]:
    """Keys that settings.py reads by name outside the spec table (``VAULT_CACERT``, ...)."""
    specs = _specs()
    known = {spec.key for spec in specs} | {alias for spec in specs for alias in spec.aliases}
    source = inspect.getsource(settings_module)
    return sorted({key for key in _QUOTED_KEY.findall(source) if key not in known})


def _is_credential(key: str, spec: Any) -> bool:
    return bool(getattr(spec, "credential", None)) or key in getattr(settings_module, "CREDENTIAL_KEYS", ())


def _field_default(attr: str) -> Any:
    for field in dataclasses.fields(settings_module.VaultSettings):
        if field.name == attr:
            if field.default is not dataclasses.MISSING:
                return field.default
            if field.default_factory is not dataclasses.MISSING:
                return field.default_factory()
    return None


def format_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"``{str(value).lower()}``"
    if isinstance(value, float) and value.is_integer():
        return f"``{int(value)}``"
    return f"``{value}``"


def settings_rows() -> list[Row]:
    """Every setting the code reads, in the spec table's order, then the direct keys."""
    rows: list[Row] = []
    for spec in _specs():
        note = NOTES.get(spec.key)
        kind = KINDS.get(getattr(spec.parse, "__name__", ""), "")
        rows.append(
            Row(
                key=spec.key,
                environment=(spec.key, *spec.aliases),
                default=note.default if note and note.default else format_default(_field_default(spec.attr)),
                kind=note.kind if note and note.kind else kind,
                credential=_is_credential(spec.key, spec),
                group=note.group if note else "Other",
                text=_text(note, spec),
            )
        )
    for key in direct_keys():
        note = NOTES.get(key)
        rows.append(
            Row(
                key=key,
                environment=(key,),
                default=note.default if note and note.default else "``false``" if "SKIP" in key else "none",
                kind=note.kind if note and note.kind else "",
                credential=_is_credential(key, None),
                group=note.group if note else "Other",
                text=note.text if note else "",
            )
        )
    return rows


def _text(note: Note | None, spec: Any) -> str:
    """The note's prose, else the setting's own ``description`` in flask_vault/settings.py."""
    if note is not None and note.text:
        return note.text.format(code_default=format_default(_field_default(spec.attr)))
    return str(getattr(spec, "description", "") or "")


def problems() -> list[str]:
    """Prose that is missing or left over; each one fails the docs build."""
    keys = {row.key for row in settings_rows()}
    found = [
        f"flask_vault.settings reads {key}, but docs/_ext/vault_settings.py NOTES has no entry for it: add one"
        for key in sorted(keys - NOTES.keys())
    ]
    found += [
        f"docs/_ext/vault_settings.py NOTES describes {key}, which flask_vault.settings does not read: remove it"
        for key in sorted(NOTES.keys() - keys)
    ]
    found += [
        f"NOTES[{key!r}] names an unknown group {note.group!r}"
        for key, note in NOTES.items()
        if note.group not in GROUPS
    ]
    return found


def _cell(text: str) -> list[str]:
    return [f"     - {text}" if text else "     -"]


def table_lines(rows: list[Row]) -> list[str]:
    """reStructuredText: one list-table per group (key, kind and default, what it does)."""
    lines: list[str] = []
    for group in (*GROUPS, "Other"):
        members = [row for row in rows if row.group == group]
        if not members:
            continue
        lines += [f".. rubric:: {group}", ""]
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 30 22 48", ""]
        lines += ["   * - key", "     - value (default)", "     - what it does"]
        for row in members:
            key = f"``{row.key}``"
            aliases = [name for name in row.environment if name != row.key]
            if aliases:
                key += " (environment: also " + ", ".join(f"``{name}``" for name in aliases) + ")"
            value = f"{row.kind} ({row.default})" if row.kind else row.default
            text = f"**Credential**: never shown in a message or a repr. {row.text}" if row.credential else row.text
            lines += [f"   * - {key}"]
            lines += _cell(value) + _cell(text)
        lines.append("")
    return lines


class VaultSettingsDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        for problem in problems():
            logger.warning(problem, location=(self.env.docname, self.lineno))
        self.env.note_dependency(inspect.getsourcefile(settings_module) or "")
        self.env.note_dependency(__file__)
        container = nodes.container()
        self.state.nested_parse(StringList(table_lines(settings_rows()), source="vault_settings"), 0, container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("vault-settings", VaultSettingsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
