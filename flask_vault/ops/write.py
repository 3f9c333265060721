"""The one write path: every change to a secret is planned, then applied the same way.

``flask vault put/rotate/rollback/restore``, :meth:`VaultClient.set_secret
<flask_vault.client.VaultClient.set_secret>` and :meth:`VaultClient.rotate_secret
<flask_vault.client.VaultClient.rotate_secret>` all build a :class:`WritePlan` and hand it
to :func:`apply_write`::

    plan_write (read current, KV version, PostgreSQL pairing)  ->  WritePlan  ->  apply_write

**Planning** reads the current version straight from Vault (never the cache) and decides,
once, everything the write depends on: the KV version of the mount (so whether there is a
check-and-set version), which fields change, and whether a changed ``password`` must also
change a PostgreSQL role. Nothing is written; a plan holds names and versions only in its
repr, so ``--dry-run`` prints it as it is.

**Applying** a plan is one audited operation (one ``put``, ``rotate``, ``rollback`` or
``restore`` record after the requests it made):

1. **New values**: fields the plan marks as generated get their values now, never at
   planning time (a dry run makes none).
2. **Permission check**: the token's capabilities on the KV data path (and on the Transit
   key when backups are encrypted) are asked first, so a token that may not write fails
   with a message naming the capability it lacks, before anything happens.
3. **Backup first**: the version just read is written to a backup file. If that fails,
   nothing is written to Vault.
4. **Paired database password**: the role's password is changed in an open transaction.
5. **Check-and-set**: the new data is written with ``cas`` = the version that was read, so
   a concurrent writer makes this write fail with :class:`VaultConflictError` and change
   nothing. This also satisfies mounts with ``cas_required=true``. (KV v1 has no versions:
   there the write is plain, after the backup.)
6. The database transaction is committed after Vault took the write, rolled back if it did
   not; if the commit fails, the old data is written back to Vault.
7. **Cache**: the client's cache holds the new version, so readers see it without a read.

Afterwards either the old version or the new one is current, and the old data is in the
backup file and in KV version history.

A plan that would give the secret the data it already holds (a restore or rollback of
the current data, a ``put`` of the same fields and values) is not applied at all: no
request, no backup, no new version, no audit record; its result says ``written=False``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from flask_vault.cache import CachedSecret
from flask_vault.errors import (
    DatabaseRotationError,
    SecretNotFoundError,
    VaultConfigError,
    VaultConflictError,
    VaultError,
    VaultPermissionError,
)
from flask_vault.ops import pgrole
from flask_vault.paths import check_field_name, check_secret_name
from flask_vault.rotation_rules import FieldRule
from flask_vault.vault.translate import path_settings

if TYPE_CHECKING:
    from flask_vault.client import VaultClient
    from flask_vault.ops.backup import BackupStore

log = logging.getLogger(__name__)

#: What each action is called in messages ("cannot rotate secret/...").
VERBS = {"rotate": "rotate", "rollback": "roll back", "restore": "restore", "put": "write", "init": "create"}


@dataclass(frozen=True)
class WritePlan:
    """One write to one secret, decided before anything changes. Immutable; no value in its repr.

    Built by :func:`plan_write` (and the ``plan_*`` helpers of :mod:`flask_vault.ops.rotation`
    and :mod:`flask_vault.ops.backup`); carried out by :func:`apply_write`.
    """

    #: ``put``, ``rotate``, ``rollback`` or ``restore``: the audit record's operation.
    action: str
    #: The secret's name, e.g. ``flask``.
    name: str
    #: Its path as Vault's CLI shows it, e.g. ``secret/store-erp/production/flask``.
    path: str
    #: The API path policies name for its values (``secret/data/...`` on KV v2).
    data_path: str
    #: 1 or 2: the mount's KV version, asked once, here.
    kv_version: int
    #: The version read from Vault (None: the secret does not exist yet).
    current: CachedSecret | None = field(repr=False)
    #: The new data, before the generated fields get their values.
    data: Mapping[str, Any] = field(repr=False)
    #: Fields whose new values are generated when the plan is applied (rotation).
    generate: tuple[FieldRule, ...] = ()
    #: ``role 'x' on host:port/db`` when a PostgreSQL role's password changes too.
    database: str | None = None

    @property
    def old_version(self) -> int | None:
        return self.current.version if self.current is not None else None

    @property
    def cas(self) -> int | None:
        """The check-and-set version of the write: the version read, 0 for a new secret, None on KV v1."""
        if self.kv_version != 2:
            return None
        return self.old_version or 0

    @property
    def next_version(self) -> int | None:
        """The version the write will create, if nobody else writes first (None on KV v1)."""
        return None if self.cas is None else self.cas + 1

    @property
    def fields(self) -> tuple[str, ...]:
        """Names of the fields that change: generated ones in rule order, then the others sorted."""
        generated = tuple(rule.field for rule in self.generate)
        old = self.current.data if self.current is not None else {}
        return generated + tuple(f for f in changed_fields(old, self.data) if f not in generated)

    @property
    def unchanged(self) -> bool:
        """Whether the write would give the secret exactly the data it holds now (then nothing is written)."""
        return self.current is not None and not self.generate and dict(self.data) == self.current.data

    @property
    def postgres_login(self) -> bool:
        """Whether the current data is a PostgreSQL login (its password lives in the database too)."""
        return self.current is not None and pgrole.is_postgres_secret(self.current.data)

    def summary(self) -> str:
        """``rotate secret/.../flask (secret_key, jwt_secret): version 3 -> 4``: what ``--dry-run`` prints."""
        fields = ", ".join(self.fields) or "no field changed"
        text = f"{VERBS.get(self.action, self.action)} {self.path} ({fields})"
        if self.database:
            text += f" and the password of PostgreSQL {self.database}"
        if self.kv_version == 2:
            text += created_or_changed(self.old_version, self.next_version)
        return text

    def new_data(self) -> dict[str, Any]:
        """The data to write: ``data`` with every generated field given a new value (never shown)."""
        data = dict(self.data)
        for rule in self.generate:
            value = rule.generate()
            if self.current is not None and value == self.current.data.get(rule.field):
                raise VaultConfigError(
                    f"The new value for {self.path}#{rule.field} equals the current one; check the generator in"
                    " VAULT_ROTATION. Nothing was changed.",
                    key="VAULT_ROTATION",
                )
            data[rule.field] = value
        return data


@dataclass(frozen=True)
class ChangeResult:
    """What one write did. Names fields, never their values."""

    action: str
    name: str
    path: str
    #: Field names whose value changed, was added or removed.
    fields: tuple[str, ...]
    old_version: int | None
    new_version: int | None
    backup: Path | None
    #: ``role 'x' on host:port/db`` when the PostgreSQL role's password was changed too.
    database: str | None = None
    #: False when the secret already held the data: nothing was written, no version made, no backup taken.
    written: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "name": self.name,
            "path": self.path,
            "fields": list(self.fields),
            "old_version": self.old_version,
            "new_version": self.new_version,
            "backup": str(self.backup) if self.backup else None,
            "database": self.database,
            "written": self.written,
        }


def created_or_changed(old_version: int | None, new_version: int | None) -> str:
    """``: version 3 -> 4``, or ``: created, version 1`` for a secret that did not exist."""
    if old_version is None:
        return f": created, version {new_version}"
    return f": version {old_version} -> {new_version}"


# -- planning ---------------------------------------------------------------------------


def require_kv2(client: VaultClient, action: str) -> None:
    if client.kv_version() != 2:
        raise VaultConfigError(
            f"`{action}` needs a KV v2 mount (versions and check-and-set); {client.mount_point!r} is KV v1.",
            key="VAULT_MOUNT_POINT",
        )


def read_current(
    client: VaultClient, name: str, *, missing_ok: bool = False, action: str = "write"
) -> CachedSecret | None:
    """The secret's current version straight from Vault (never the cache).

    A token that may not read it is refused here, naming the ``read`` capability: a write
    that cannot read the current version cannot back it up.
    """
    try:
        return client.read_version(name)
    except SecretNotFoundError:
        if missing_ok:
            return None
        raise
    except VaultPermissionError as exc:
        raise permission_error(client, name, action, client.data_path(name), "read", None) from exc


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in set(old) | set(new) if k not in old or k not in new or old[k] != new[k]))


def check_data(data: object) -> dict[str, Any]:
    """A copy of ``data``, refused unless it is a non-empty mapping of field names to values."""
    if not isinstance(data, Mapping) or not data or not all(isinstance(k, str) and k for k in data):
        raise VaultConfigError("data must be a non-empty mapping of field names (strings) to values.", key="data")
    return dict(data)


def plan_write(
    client: VaultClient,
    name: str,
    current: CachedSecret | None,
    data: Mapping[str, Any],
    *,
    action: str,
    generate: Iterable[FieldRule] = (),
    database: bool | None = None,
) -> WritePlan:
    """Decide a write of ``data`` (plus ``generate``d fields) over ``current``, what the caller read.

    ``database``: ``None`` pairs a changed password with PostgreSQL when the secret is a
    PostgreSQL login, ``True`` insists (refusing a secret that is not one), ``False``
    never pairs. Nothing is written.
    """
    check_secret_name(name)
    kv_version = client.kv_version(client.full_path(name))
    rules = tuple(generate)
    new = check_data(data)
    password_changes = any(rule.field == "password" for rule in rules) or (
        "password" in new and (current is None or current.data.get("password") != new["password"])
    )
    rel = client.secret_path(name)
    return WritePlan(
        action=action,
        name=name,
        path=client.full_path(name),
        data_path=f"{client.mount_point}/data/{rel}" if kv_version == 2 else f"{client.mount_point}/{rel}",
        kv_version=kv_version,
        current=current,
        data=MappingProxyType(new),
        generate=rules,
        database=pairing(current, password_changes=password_changes, postgres=database, name=name),
    )


def plan_put(
    client: VaultClient, name: str, data: Mapping[str, Any], *, merge: bool = False, cas: int | None = None
) -> WritePlan:
    """Plan writing ``data`` as the secret's contents (``merge``: over the current fields).

    Like ``flask vault put``, this never changes a PostgreSQL password in the database.
    ``cas`` insists that the current version is that one (0: that the secret is absent).
    """
    check_secret_name(name)
    given = check_data(data)
    for position, field_name in enumerate(given, start=1):
        check_field_name(field_name, argument=f"data (field {position} of {len(given)})")
    if cas is not None and (isinstance(cas, bool) or not isinstance(cas, int) or cas < 0):
        raise VaultConfigError(f"cas must be a version number >= 0, got {cas!r}.", key="cas")
    current = read_current(client, name, missing_ok=True, action="put")
    if cas is not None:
        _check_expected_version(client, name, current, cas)
    new = {**current.data, **given} if merge and current is not None else given
    return plan_write(client, name, current, new, action="put", database=False)


def _check_expected_version(client: VaultClient, name: str, current: CachedSecret | None, cas: int) -> None:
    if client.kv_version() != 2:
        raise VaultConfigError("cas needs a KV v2 mount.", key="cas")
    found = current.version if current is not None and current.version is not None else 0
    if found != cas:
        seen = f"version {found}" if found else "absent"
        raise VaultConflictError(
            f"{client.full_path(name)} is {seen}, not {'absent' if cas == 0 else f'version {cas}'} as the check-and-set"
            " expected; nothing was written. Read it again and retry.",
            url=client.url,
            mount=client.mount_point,
            path=client.full_path(name),
            status=400,
        )


def pairing(current: CachedSecret | None, *, password_changes: bool, postgres: bool | None, name: str) -> str | None:
    """``role 'x' on host:port/db`` when the write must change a PostgreSQL role's password too, else None."""
    if postgres is False or current is None or not password_changes:
        return None
    if pgrole.is_postgres_secret(current.data):
        pgrole.require_driver()  # before the backup: a write that cannot pair must not look half done
        return pgrole.describe(current.data)
    if postgres:
        raise VaultConfigError(
            f"VAULT_ROTATION[{name!r}]['password'] sets postgres=true but {current.path} is not a PostgreSQL login"
            " (it needs 'username' and 'host', no 'url', and a postgresql driver).",
            key="VAULT_ROTATION",
        )
    return None


def check_can_write(client: VaultClient, plan: WritePlan, store: BackupStore | None) -> None:
    """Ask Vault whether this token may do the write (and the encrypted backup) first.

    Raises :class:`VaultPermissionError` naming the missing capability. When the token
    may not ask (``sys/capabilities-self`` denied), the check is skipped and the write
    itself reports the refusal.
    """
    needed = {plan.data_path: "create" if plan.current is None else "update"}
    transit_path = store.transit_encrypt_path if store is not None else None
    if transit_path:
        needed[transit_path] = "update"
    try:
        held = client.capabilities(list(needed))
    except VaultError as exc:
        log.debug("Cannot ask for this token's capabilities (%s); the write will tell.", exc.message)
        return
    for path, capability in needed.items():
        caps = held.get(path, [])
        if "root" not in caps and capability not in caps:
            raise permission_error(client, plan.name, plan.action, path, capability, caps)


def permission_error(
    client: VaultClient, name: str, action: str, path: str, capability: str, held: list[str] | None
) -> VaultPermissionError:
    has = "unknown" if held is None else (", ".join(c for c in held if c != "deny") or "none")
    transit = "/encrypt/" in path
    what = "write encrypted backups for" if transit else VERBS.get(action, action)
    settings = path_settings(client.mount_point, client.path_prefix, client.environment)
    built = "" if transit else f"; that API path is built from {settings}"
    return VaultPermissionError(
        f"Permission denied: this token lacks the {capability!r} capability on {path} (it has: {has}), so it"
        f" cannot {what} {client.full_path(name)}{built}. Use a token whose policy grants it, such as"
        " policies/rotator.hcl (`flask vault policy rotator`). Nothing was changed.",
        url=client.url,
        mount=client.mount_point,
        path=path,
        status=403,
    )


# -- applying ---------------------------------------------------------------------------


def apply_write(client: VaultClient, plan: WritePlan, store: BackupStore | None = None) -> ChangeResult:
    """Carry out ``plan`` against the version it read: back up, check-and-set, pair, cache.

    ``store`` defaults to the client's own (``client.backups``). The change is one
    ``plan.action`` record in the audit trail. An unchanged plan (``plan.unchanged``)
    writes nothing and returns a result with ``written=False``.
    """
    store = store if store is not None else client.backups
    if plan.unchanged:  # no request, no backup, no audit record of a write that did not happen
        log.info("%s %s: unchanged (version %s already holds this data)", plan.action, plan.path, plan.old_version)
        return ChangeResult(
            action=plan.action,
            name=plan.name,
            path=plan.path,
            fields=(),
            old_version=plan.old_version,
            new_version=plan.old_version,
            backup=None,
            written=False,
        )
    with client.trail.operation(plan.action, plan.path) as audited:
        result = _apply(client, plan, store)
        audited.version = result.new_version
    return result


def _apply(client: VaultClient, plan: WritePlan, store: BackupStore) -> ChangeResult:
    new = plan.new_data()
    check_can_write(client, plan, store)
    current = plan.current
    backup = store.save(plan.name, current, reason=plan.action) if current is not None else None
    pending = pgrole.begin_password_change(current.data, new) if plan.database and current is not None else None
    try:
        version = client.raw_write(plan.name, new, cas=plan.cas, kv_version=plan.kv_version)
    except BaseException as exc:
        if pending is not None:
            pending.rollback()
        explained = _explain(exc, client, plan)
        if explained is None:
            raise
        raise explained from exc
    if pending is not None:
        assert current is not None
        _commit_or_undo(client, plan, pending, current, version, backup)
    client.cache.put(CachedSecret(plan.path, new, version, client.cache.clock()))
    log.info("%s %s: version %s -> %s", plan.action, plan.path, plan.old_version, version)
    return ChangeResult(
        action=plan.action,
        name=plan.name,
        path=plan.path,
        fields=changed_fields(current.data if current is not None else {}, new),
        old_version=plan.old_version,
        new_version=version,
        backup=backup,
        database=pending.where if pending is not None else None,
    )


def _explain(exc: BaseException, client: VaultClient, plan: WritePlan) -> VaultError | None:
    """A clearer error for a lost check-and-set or a refused write; None keeps ``exc``."""
    if isinstance(exc, VaultConflictError):
        seen = f"version {plan.cas}" if plan.cas else "absent"
        return VaultConflictError(
            f"Conflict: {plan.path} changed while this {plan.action} was running (it was {seen} when read; another"
            f" writer got there first). Nothing was written; run the command again.",
            url=exc.url,
            mount=exc.mount,
            path=exc.path,
            status=exc.status,
        )
    if isinstance(exc, VaultPermissionError):
        capability = "create" if plan.current is None else "update"
        return permission_error(client, plan.name, plan.action, plan.data_path, capability, None)
    return None


def _commit_or_undo(
    client: VaultClient,
    plan: WritePlan,
    pending: pgrole.PendingPasswordChange,
    current: CachedSecret,
    version: int | None,
    backup: Path | None,
) -> None:
    try:
        pending.commit()
    except DatabaseRotationError as exc:
        try:
            undo = client.raw_write(plan.name, current.data, cas=version, kv_version=plan.kv_version)
        except VaultError as undo_exc:
            raise DatabaseRotationError(
                f"{exc.message} Vault already holds the new password as version {version} and writing the old"
                f" data back failed ({undo_exc.message}). Run `flask vault rollback {plan.name} --version"
                f" {current.version}` or restore {backup}."
            ) from exc
        client.cache.put(CachedSecret(plan.path, dict(current.data), undo, client.cache.clock()))
        raise DatabaseRotationError(
            f"{exc.message} Vault was set back to the old data as version {undo}; the role keeps its old password."
        ) from exc
