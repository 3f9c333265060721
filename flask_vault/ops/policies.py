"""Least-privilege Vault policies for the app and for the operator who rotates its secrets.

The templates are the files shipped in the package, ``flask_vault/policies/app.hcl``,
``rotator.hcl`` and ``database.hcl``, read once at import. Placeholders:

``${mount}``
    the KV v2 mount (``VAULT_MOUNT_POINT``, e.g. ``secret``);
``${prefix}`` and ``${environment}``
    ``VAULT_PATH_PREFIX`` and ``VAULT_ENVIRONMENT`` (with no prefix, ``${prefix}/`` goes away);
``${transit_mount}`` and ``${transit_key}``
    ``VAULT_TRANSIT_MOUNT`` and ``VAULT_BACKUP_TRANSIT_KEY`` (the transit block is dropped
    when no key is set);
``${database_mount}`` and ``${database_role}``
    ``VAULT_DATABASE_MOUNT`` and ``VAULT_DATABASE_ROLE`` (the ``database`` policy, for
    dynamic database credentials, which the app's token needs besides ``app``).

Render them with ``flask vault policy app|rotator|database`` or :func:`render_policy`.

KV v2 keeps values under ``<mount>/data/`` and names and versions under
``<mount>/metadata/``: a ``list`` capability on a ``data/`` path does nothing. KV v1 has
neither: its values and names share one path, so for ``kv_version=1`` the two blocks
become one on ``<mount>/<prefix>/<environment>/*`` with both blocks' capabilities (what
Vault itself does with two blocks for one path, written out).
"""

from __future__ import annotations

import re
from importlib.resources import files
from string import Template

from flask_vault.errors import VaultConfigError
from flask_vault.paths import check_path_part


def _shipped(kind: str) -> str:
    """The template as shipped in ``flask_vault/policies/<kind>.hcl``: one text, two uses."""
    return (files("flask_vault") / "policies" / f"{kind}.hcl").read_text(encoding="utf-8")


APP_POLICY = _shipped("app")
ROTATOR_POLICY = _shipped("rotator")
DATABASE_POLICY = _shipped("database")

TEMPLATES = {"app": APP_POLICY, "rotator": ROTATOR_POLICY, "database": DATABASE_POLICY}
KV_VERSIONS = (1, 2)

_TRANSIT_BLOCK = re.compile(r"\n# BEGIN transit.*?# END transit\n", re.DOTALL)
_KEY_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_KV2_PART = re.compile(r'^path "\$\{mount\}/(?:data|metadata)/', re.MULTILINE)
_BLOCK = re.compile(r'path "(?P<path>[^"]+)" \{\n  capabilities = \[(?P<caps>[^\]]*)\]\n\}\n')


def render_policy(
    kind: str,
    *,
    mount: str = "secret",
    prefix: str | None,
    environment: str,
    transit_mount: str = "transit",
    transit_key: str | None = None,
    kv_version: int = 2,
    database_mount: str = "database",
    database_role: str | None = None,
) -> str:
    """The ``app``, ``rotator`` or ``database`` policy for one app and environment, as HCL.

    ``kv_version`` is the KV version of ``mount`` (1 or 2): the paths a policy names differ.
    The ``database`` policy is for ``database_role`` on ``database_mount`` (KV plays no part).
    """
    try:
        template = TEMPLATES[kind]
    except KeyError:
        raise VaultConfigError(f"Unknown policy {kind!r}; expected one of {', '.join(TEMPLATES)}.") from None
    if kind == "database":
        return _database_policy(template, database_mount, database_role)
    check_path_part("VAULT_MOUNT_POINT", mount)
    check_path_part("VAULT_ENVIRONMENT", environment)
    check_path_part("VAULT_TRANSIT_MOUNT", transit_mount)
    if prefix:
        check_path_part("VAULT_PATH_PREFIX", prefix)
    if kv_version not in KV_VERSIONS:
        raise VaultConfigError(f"kv_version must be 1 or 2, got {kv_version!r}.", key="kv_version")
    if transit_key is not None and not _KEY_NAME.fullmatch(transit_key):
        raise VaultConfigError(
            f"VAULT_BACKUP_TRANSIT_KEY must be a Transit key name, got {transit_key!r}.", key="VAULT_BACKUP_TRANSIT_KEY"
        )
    if not prefix:
        template = template.replace("${prefix}/${environment}", "${environment}")
    if transit_key is None:
        template = _TRANSIT_BLOCK.sub("", template)
    body = _body(template)
    if kv_version == 1:
        body = _merge_blocks(_KV2_PART.sub('path "${mount}/', body))
    rendered = Template(body).substitute(
        mount=mount,
        prefix=prefix or "",
        environment=environment,
        transit_mount=transit_mount,
        transit_key=transit_key or "",
    )
    where = f"{mount}/{prefix + '/' if prefix else ''}{environment}"
    return f"# flask-vault {kind} policy for {where}{' (KV v1)' if kv_version == 1 else ''}\n{rendered}"


def _database_policy(template: str, mount: str, role: str | None) -> str:
    if role is None:
        raise VaultConfigError(
            "The database policy is for VAULT_DATABASE_ROLE, which is not set.", key="VAULT_DATABASE_ROLE"
        )
    check_path_part("VAULT_DATABASE_MOUNT", mount)
    check_path_part("VAULT_DATABASE_ROLE", role)
    rendered = Template(_body(template)).substitute(database_mount=mount, database_role=role)
    return f"# flask-vault database policy for {mount}/creds/{role}\n{rendered}"


def _body(template: str) -> str:
    """The template without its leading comment lines (which mention the placeholders)."""
    lines = template.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[start:]).lstrip("\n")


def _merge_blocks(body: str) -> str:
    """One ``path`` block per path: later blocks' capabilities join the first block of their path."""
    capabilities: dict[str, list[str]] = {}
    for match in _BLOCK.finditer(body):
        held = capabilities.setdefault(match["path"], [])
        held.extend(c.strip() for c in match["caps"].split(",") if c.strip() not in held)

    def first_only(match: re.Match[str]) -> str:
        caps = capabilities.pop(match["path"], None)
        if caps is None:  # a later block of a path already written
            return ""
        return f'path "{match["path"]}" {{\n  capabilities = [{", ".join(caps)}]\n}}\n'

    return re.sub(r"\n{3,}", "\n\n", _BLOCK.sub(first_only, body)).rstrip("\n") + "\n"
