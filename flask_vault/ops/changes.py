"""Write a new version of a secret so that nothing is lost and no update is lost.

Rotation, rollback, restore and ``flask vault put`` all end in :func:`apply_change`:

1. **Permission check**: the token's capabilities on the KV data path (and on the
   Transit key when backups are encrypted) are asked first, so a token that may not
   write fails with a message naming the capability it lacks, before anything happens.
2. **Backup first**: the data just read is written to a backup file. If that fails,
   nothing is written to Vault.
3. **Check-and-set**: the new data is written with ``cas`` = the version that was read,
   so a concurrent writer makes this write fail with :class:`VaultConflictError` and
   change nothing. This also satisfies mounts with ``cas_required=true``.
4. **Paired database password**: when the secret is a PostgreSQL login and its
   ``password`` changes, the role's password is changed in an open transaction before
   the Vault write and committed after it; if the Vault write fails the transaction is
   rolled back, and if the commit fails the old data is written back to Vault.

Afterwards either the old version or the new one is current, and the old data is in
the backup file and in KV version history.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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

if TYPE_CHECKING:
    from flask_vault.client import VaultClient
    from flask_vault.ops.backup import BackupStore

log = logging.getLogger(__name__)

#: What each action is called in messages ("cannot rotate secret/...").
VERBS = {"rotate": "rotate", "rollback": "roll back", "restore": "restore", "put": "write"}


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
        }


def require_kv2(client: VaultClient, action: str) -> None:
    if client.kv_version() != 2:
        raise VaultConfigError(
            f"`{action}` needs a KV v2 mount (versions and check-and-set); {client.mount_point!r} is KV v1.",
            key="VAULT_MOUNT_POINT",
        )


def read_current(client: VaultClient, name: str, *, missing_ok: bool = False) -> CachedSecret | None:
    """The secret's current version straight from Vault (never the cache)."""
    try:
        return client.read_version(name)
    except SecretNotFoundError:
        if missing_ok:
            return None
        raise


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(k for k in set(old) | set(new) if k not in old or k not in new or old[k] != new[k]))


def pairs_with_postgres(current: CachedSecret | None, new_data: Mapping[str, Any], database: bool | None) -> bool:
    """Whether writing ``new_data`` must also change a PostgreSQL role's password."""
    if database is False or current is None:
        return False
    old = current.data
    if "password" not in new_data or old.get("password") == new_data.get("password"):
        return False
    if pgrole.is_postgres_secret(old):
        return True
    if database:
        raise VaultConfigError(
            f"{current.path} is not a PostgreSQL login (it needs 'username' and 'host', no 'url', and a"
            " postgresql driver), so its password cannot be changed in the database.",
            key="VAULT_ROTATION",
        )
    return False


def check_can_write(client: VaultClient, name: str, *, create: bool, action: str, store: BackupStore | None) -> None:
    """Ask Vault whether this token may do the write (and the encrypted backup) first.

    Raises :class:`VaultPermissionError` naming the missing capability. When the token
    may not ask (``sys/capabilities-self`` denied), the check is skipped and the write
    itself reports the refusal.
    """
    data_path = client.data_path(name)
    needed = {data_path: "create" if create else "update"}
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
            raise permission_error(client, name, action, path, capability, caps)


def permission_error(
    client: VaultClient, name: str, action: str, path: str, capability: str, held: list[str] | None
) -> VaultPermissionError:
    has = "unknown" if held is None else (", ".join(c for c in held if c != "deny") or "none")
    what = "write encrypted backups for" if "/encrypt/" in path else VERBS.get(action, action)
    return VaultPermissionError(
        f"Permission denied: this token lacks the {capability!r} capability on {path} (it has: {has}), so it"
        f" cannot {what} {client.full_path(name)}. Use a token whose policy grants it, such as"
        " policies/rotator.hcl (`flask vault policy rotator`). Nothing was changed.",
        url=client.url,
        mount=client.mount_point,
        path=path,
        status=403,
    )


def apply_change(
    client: VaultClient,
    name: str,
    current: CachedSecret | None,
    new_data: Mapping[str, Any],
    *,
    action: str,
    store: BackupStore,
    database: bool | None = None,
) -> ChangeResult:
    """Back up ``current``, then write ``new_data`` with check-and-set against it.

    ``current`` is what the caller read (``None``: the secret does not exist yet, so the
    write only succeeds if it still does not). ``database``: ``None`` pairs a changed
    password with PostgreSQL when the secret is a PostgreSQL login, ``True`` insists,
    ``False`` never does. The change is one ``action`` record in the audit trail.
    """
    with client.trail.operation(action, client.full_path(name)) as audited:
        result = _apply_change(client, name, current, new_data, action=action, store=store, database=database)
        audited.version = result.new_version
    return result


def _apply_change(
    client: VaultClient,
    name: str,
    current: CachedSecret | None,
    new_data: Mapping[str, Any],
    *,
    action: str,
    store: BackupStore,
    database: bool | None = None,
) -> ChangeResult:
    require_kv2(client, action)
    new = dict(new_data)
    path = client.full_path(name)
    pairing = pairs_with_postgres(current, new, database)
    check_can_write(client, name, create=current is None, action=action, store=store)
    backup = store.save(name, current, reason=action) if current is not None else None
    cas = current.version if current is not None and current.version is not None else 0
    pending = pgrole.begin_password_change(current.data, new) if pairing and current is not None else None
    try:
        version = client.set_secret(name, new, cas=cas)
    except BaseException as exc:
        if pending is not None:
            pending.rollback()
        explained = _explain(exc, client, name, action, cas)
        if explained is None:
            raise
        raise explained from exc
    if pending is not None:
        assert current is not None
        _commit_or_undo(client, name, pending, current, version, backup)
    log.info("%s %s: version %s -> %s", action, path, current.version if current else None, version)
    return ChangeResult(
        action=action,
        name=name,
        path=path,
        fields=changed_fields(current.data if current else {}, new),
        old_version=current.version if current else None,
        new_version=version,
        backup=backup,
        database=pending.where if pending is not None else None,
    )


def _explain(exc: BaseException, client: VaultClient, name: str, action: str, cas: int) -> VaultError | None:
    """A clearer error for a lost check-and-set or a refused write; None keeps ``exc``."""
    path = client.full_path(name)
    if isinstance(exc, VaultConflictError):
        seen = f"version {cas}" if cas else "absent"
        return VaultConflictError(
            f"Conflict: {path} changed while this {action} was running (it was {seen} when read; another"
            f" writer got there first). Nothing was written; run the command again.",
            url=exc.url,
            mount=exc.mount,
            path=exc.path,
            status=exc.status,
        )
    if isinstance(exc, VaultPermissionError):
        return permission_error(client, name, action, client.data_path(name), "update" if cas else "create", None)
    return None


def _commit_or_undo(
    client: VaultClient,
    name: str,
    pending: pgrole.PendingPasswordChange,
    current: CachedSecret,
    version: int | None,
    backup: Path | None,
) -> None:
    try:
        pending.commit()
    except DatabaseRotationError as exc:
        try:
            undo = client.set_secret(name, current.data, cas=version)
        except VaultError as undo_exc:
            raise DatabaseRotationError(
                f"{exc.message} Vault already holds the new password as version {version} and writing the old"
                f" data back failed ({undo_exc.message}). Run `flask vault rollback {name} --version"
                f" {current.version}` or restore {backup}."
            ) from exc
        raise DatabaseRotationError(
            f"{exc.message} Vault was set back to the old data as version {undo}; the role keeps its old password."
        ) from exc
