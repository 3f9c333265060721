"""Least-privilege Vault policies for the app and for the operator who rotates its secrets.

The templates here are the ones shipped as ``policies/app.hcl`` and
``policies/rotator.hcl`` (a test keeps them identical). Placeholders:

``${mount}``
    the KV v2 mount (``VAULT_MOUNT_POINT``, e.g. ``secret``);
``${prefix}`` and ``${environment}``
    ``VAULT_PATH_PREFIX`` and ``VAULT_ENVIRONMENT`` (with no prefix, ``${prefix}/`` goes away);
``${transit_mount}`` and ``${transit_key}``
    ``VAULT_TRANSIT_MOUNT`` and ``VAULT_BACKUP_TRANSIT_KEY`` (the transit block is dropped
    when no key is set).

Render them with ``flask vault policy app|rotator`` or :func:`render_policy`.

KV v2 keeps values under ``<mount>/data/`` and names and versions under
``<mount>/metadata/``: a ``list`` capability on a ``data/`` path does nothing.
"""

from __future__ import annotations

import re
from string import Template

from flask_vault.errors import VaultConfigError
from flask_vault.paths import check_path_part

APP_POLICY = """\
# flask-vault: the app's policy. Read this app's secrets in one environment; nothing else.
# Placeholders: ${mount} ${prefix} ${environment} (render: flask vault policy app).
# KV v2 keeps values under <mount>/data/ and names and versions under <mount>/metadata/;
# "list" on a data/ path does nothing, so listing is granted on metadata/.

path "${mount}/data/${prefix}/${environment}/*" {
  capabilities = ["read"]
}

path "${mount}/metadata/${prefix}/${environment}/*" {
  capabilities = ["list"]
}
"""

ROTATOR_POLICY = """\
# flask-vault: the rotator's policy (flask vault rotate, rollback, restore, put, backup).
# Placeholders: ${mount} ${prefix} ${environment} ${transit_mount} ${transit_key}
# (render: flask vault policy rotator).
# Writes are create/update only: no delete, destroy or metadata changes, so KV version
# history (which rollback and recovery rely on) cannot be erased with this token.

path "${mount}/data/${prefix}/${environment}/*" {
  capabilities = ["create", "read", "update"]
}

path "${mount}/metadata/${prefix}/${environment}/*" {
  capabilities = ["list", "read"]
}

# BEGIN transit: backups encrypted with VAULT_BACKUP_TRANSIT_KEY
path "${transit_mount}/encrypt/${transit_key}" {
  capabilities = ["update"]
}

path "${transit_mount}/decrypt/${transit_key}" {
  capabilities = ["update"]
}
# END transit
"""

TEMPLATES = {"app": APP_POLICY, "rotator": ROTATOR_POLICY}

_TRANSIT_BLOCK = re.compile(r"\n# BEGIN transit.*?# END transit\n", re.DOTALL)
_KEY_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def render_policy(
    kind: str,
    *,
    mount: str = "secret",
    prefix: str | None,
    environment: str,
    transit_mount: str = "transit",
    transit_key: str | None = None,
) -> str:
    """The ``app`` or ``rotator`` policy for one app and environment, as HCL."""
    try:
        template = TEMPLATES[kind]
    except KeyError:
        raise VaultConfigError(f"Unknown policy {kind!r}; expected one of {', '.join(TEMPLATES)}.") from None
    check_path_part("VAULT_MOUNT_POINT", mount)
    check_path_part("VAULT_ENVIRONMENT", environment)
    check_path_part("VAULT_TRANSIT_MOUNT", transit_mount)
    if prefix:
        check_path_part("VAULT_PATH_PREFIX", prefix)
    if transit_key is not None and not _KEY_NAME.fullmatch(transit_key):
        raise VaultConfigError(
            f"VAULT_BACKUP_TRANSIT_KEY must be a Transit key name, got {transit_key!r}.", key="VAULT_BACKUP_TRANSIT_KEY"
        )
    if not prefix:
        template = template.replace("${prefix}/${environment}", "${environment}")
    if transit_key is None:
        template = _TRANSIT_BLOCK.sub("", template)
    body = _body(template)
    rendered = Template(body).substitute(
        mount=mount,
        prefix=prefix or "",
        environment=environment,
        transit_mount=transit_mount,
        transit_key=transit_key or "",
    )
    return f"# flask-vault {kind} policy for {mount}/{prefix + '/' if prefix else ''}{environment}\n{rendered}"


def _body(template: str) -> str:
    """The template without its leading comment lines (which mention the placeholders)."""
    lines = template.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[start:]).lstrip("\n")
