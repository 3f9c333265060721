"""Backup files of secret versions: written safely, verified before any restore.

A backup is one JSON file per secret version, named
``<name>_<environment>_<UTC timestamp>.json`` in ``VAULT_BACKUP_DIR`` (default: the
app's instance folder, ``vault-backups/``; for a ``VaultClient`` outside an app, the
user's state directory, see :func:`default_backup_dir`). Every write of an existing
secret, by the CLI or the library, saves one first (:mod:`flask_vault.ops.write`).
The directory is made 0700 and each file 0600, written to a temporary file, synced
and then linked into place, so a crash never leaves a half-written backup under a
real name.

Each file carries a header (secret name, mount, prefix, environment, KV path and
version, reason, time), the data, and a SHA-256 checksum of everything else. When
``VAULT_BACKUP_TRANSIT_KEY`` names a Transit key the data is encrypted by Vault's
Transit engine with the header as associated data, so the file never holds a
plaintext value and an edited header cannot be decrypted. Without it the data is
stored as plaintext (the CLI warns once per command).

:func:`load_backup` refuses a truncated, edited, unknown or foreign-environment file
with a :class:`~flask_vault.errors.BackupError`; :func:`restore` then writes the data
back as a new version through the write path (:func:`plan_restore`, then
:func:`flask_vault.ops.write.apply_write`: backup of the current data first,
check-and-set).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask_vault.cache import CachedSecret
from flask_vault.errors import BackupError, VaultError
from flask_vault.ops.write import ChangeResult, WritePlan, apply_write, plan_write, read_current, require_kv2
from flask_vault.paths import check_secret_name
from flask_vault.state import get_state

if TYPE_CHECKING:
    from flask import Flask

    from flask_vault.client import VaultClient
    from flask_vault.settings import VaultSettings

log = logging.getLogger(__name__)

FORMAT = "flask-vault-backup"
FORMAT_VERSION = 1
#: Bigger files are refused unread: a KV secret is at most a few hundred KB.
MAX_FILE_BYTES = 16 * 1024 * 1024
DEFAULT_DIRNAME = "vault-backups"
#: The folder under the user's state directory that a client outside an app backs up to.
APP_DIRNAME = "flask-vault"

PLAINTEXT_WARNING = (
    "warning: VAULT_BACKUP_TRANSIT_KEY is not set, so backup files in {directory} hold secret values in"
    " plaintext (mode 0600); set it to a Transit key to encrypt them."
)

_HEADER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "format_version": int,
    "name": str,
    "mount": str,
    "prefix": (str, type(None)),
    "environment": str,
    "path": str,
    "version": (int, type(None)),
    "created_time": (str, type(None)),
    "backed_up_at": str,
    "reason": str,
    "encryption": (dict, type(None)),
}


@dataclass(frozen=True)
class BackupInfo:
    """What a backup file says about itself; never holds a value."""

    file: Path
    name: str
    environment: str
    path: str
    version: int | None
    backed_up_at: str
    reason: str
    encrypted: bool
    #: None when the file is intact, else why it cannot be restored.
    problem: str | None = None


@dataclass(frozen=True)
class Backup:
    """A verified backup: its header and the decrypted data."""

    info: BackupInfo
    data: dict[str, Any] = field(repr=False)


def default_backup_dir(settings: VaultSettings, instance_path: str | os.PathLike[str] | None = None) -> Path:
    """``VAULT_BACKUP_DIR``, else ``<instance folder>/vault-backups`` in an app.

    Without an app (a bare ``VaultClient()``): ``vault-backups`` in the user's state
    directory, ``$XDG_STATE_HOME/flask-vault/`` (``~/.local/state/flask-vault/``) on
    Linux, as :func:`platformdirs.user_state_path` names it on other systems.
    """
    if settings.backup_dir:
        return Path(settings.backup_dir).expanduser()
    if instance_path is not None:
        return Path(instance_path) / DEFAULT_DIRNAME
    import platformdirs  # only a client outside an app needs it: keep it off an app's start-up

    return platformdirs.user_state_path(APP_DIRNAME) / DEFAULT_DIRNAME


class BackupStore:
    """Writes, lists and verifies backup files in one directory for one client."""

    def __init__(
        self,
        client: VaultClient,
        directory: str | os.PathLike[str],
        *,
        transit_key: str | None = None,
        transit_mount: str = "transit",
    ) -> None:
        self.client = client
        self.directory = Path(directory)
        self.transit_key = transit_key
        self.transit_mount = transit_mount

    @classmethod
    def for_client(cls, client: VaultClient, directory: str | os.PathLike[str]) -> BackupStore:
        """A store in ``directory`` that encrypts as the client's settings say."""
        settings: VaultSettings = client.settings
        return cls(
            client,
            directory,
            transit_key=settings.backup_transit_key,
            transit_mount=settings.transit_mount,
        )

    @classmethod
    def for_app(cls, app: Flask, directory: str | os.PathLike[str] | None = None) -> BackupStore:
        """The app's store (the one its client writes to), or one in ``directory``."""
        client: VaultClient = get_state(app).client
        if directory is None:
            return client.backups
        return cls.for_client(client, Path(directory))

    def __repr__(self) -> str:
        return f"<BackupStore {str(self.directory)!r} encrypted={self.encrypted}>"

    @property
    def encrypted(self) -> bool:
        return self.transit_key is not None

    @property
    def transit_encrypt_path(self) -> str | None:
        """The API path the token needs ``update`` on to write backups, when encrypting."""
        return f"{self.transit_mount}/encrypt/{self.transit_key}" if self.transit_key else None

    @property
    def plaintext_warning(self) -> str | None:
        return None if self.encrypted else PLAINTEXT_WARNING.format(directory=self.directory)

    # -- writing -----------------------------------------------------------------------

    def save(self, name: str, entry: CachedSecret, *, reason: str = "backup") -> Path:
        """Write ``entry`` (one version of secret ``name``) to a new file; return its path.

        Recorded as one ``backup`` operation in the audit trail.
        """
        with self.client.trail.operation("backup", self.client.full_path(name)) as audited:
            audited.version = entry.version
            return self._save(name, entry, reason=reason)

    def _save(self, name: str, entry: CachedSecret, *, reason: str) -> Path:
        client = self.client
        now = datetime.now(timezone.utc)
        header: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "mount": client.mount_point,
            "prefix": client.path_prefix,
            "environment": client.environment,
            "path": client.full_path(name),
            "version": entry.version,
            "created_time": entry.created_time,
            "backed_up_at": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "reason": reason,
            "encryption": (
                {"engine": "transit", "mount": self.transit_mount, "key": self.transit_key}
                if self.transit_key
                else None
            ),
        }
        document = dict(header)
        if self.transit_key:
            document["ciphertext"] = client.transit_encrypt(
                self.transit_key,
                _canonical(entry.data),
                mount=self.transit_mount,
                associated_data=_canonical(header),
            )
        else:
            document["data"] = dict(entry.data)
        document["checksum"] = _checksum(document)
        stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
        filename = f"{_file_safe(name)}_{_file_safe(client.environment)}_{stamp}"
        target = self._write_atomically(filename, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        log.info("Backed up %s version %s to %s", header["path"], entry.version, target)
        return target

    def ensure_directory(self) -> Path:
        """Create the directory (0700) if needed and tighten it if others can read it."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            mode = stat.S_IMODE(self.directory.stat().st_mode)
            if mode != 0o700:
                os.chmod(self.directory, 0o700)
                log.warning("Changed the mode of the backup directory %s from %o to 700.", self.directory, mode)
        except OSError as exc:
            raise BackupError(
                f"Cannot use the backup directory {self.directory}: {exc.strerror or exc}. Set VAULT_BACKUP_DIR"
                " to a directory this user can write. Nothing was changed in Vault.",
                file=str(self.directory),
            ) from exc
        return self.directory

    def _write_atomically(self, stem: str, text: str) -> Path:
        directory = self.ensure_directory()
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
        except OSError as exc:
            raise BackupError(
                f"Cannot write a backup in {directory}: {exc.strerror or exc}. Nothing was changed in Vault.",
                file=str(directory),
            ) from exc
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            target = self._link_unique(tmp, directory, stem)
            _fsync_directory(directory)
            return target
        except OSError as exc:
            raise BackupError(
                f"Cannot write a backup in {directory}: {exc.strerror or exc}. Nothing was changed in Vault.",
                file=str(directory),
            ) from exc
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _link_unique(tmp: Path, directory: Path, stem: str) -> Path:
        """Give the finished file its name without ever replacing another backup."""
        for attempt in range(1, 1000):
            target = directory / (f"{stem}.json" if attempt == 1 else f"{stem}-{attempt}.json")
            try:
                os.link(tmp, target)
            except FileExistsError:
                continue
            except OSError:
                # No hard links on this file system: rename, after checking the name is free.
                if target.exists():
                    continue
                os.replace(tmp, target)
            return target
        raise BackupError(f"Cannot find a free backup file name for {stem} in {directory}.", file=str(directory))

    # -- reading -----------------------------------------------------------------------

    def list(self, name: str | None = None) -> list[BackupInfo]:
        """Backups in the directory, newest first; damaged files are listed with their problem."""
        if not self.directory.is_dir():
            return []
        infos = []
        for path in self.directory.glob("*.json"):
            if path.name.startswith(".") or not path.is_file():
                continue
            info = read_info(path)
            if name is None or info.name == name:
                infos.append(info)
        infos.sort(key=lambda info: (info.backed_up_at, info.file.name), reverse=True)
        return infos

    def load(self, file: str | os.PathLike[str]) -> Backup:
        """Read and verify a backup for this client's environment; see :func:`load_backup`."""
        return load_backup(file, self.client)


def read_info(path: Path) -> BackupInfo:
    """The header of a backup file, with ``problem`` set when it does not verify."""
    try:
        document = _read_document(path)
        _check_document(path, document)
    except BackupError as exc:
        stamp = datetime.fromtimestamp(_mtime(path), timezone.utc).isoformat(timespec="microseconds")
        return BackupInfo(path, "?", "?", "?", None, stamp.replace("+00:00", "Z"), "?", False, exc.message)
    return _info(path, document)


def load_backup(file: str | os.PathLike[str], client: VaultClient) -> Backup:
    """Read, verify and (when encrypted) decrypt a backup meant for ``client``'s environment.

    Raises :class:`BackupError` for a missing, truncated, edited, unknown or
    foreign-environment file, or one Transit will not decrypt.
    """
    path = Path(file)
    document = _read_document(path)
    try:
        _check_document(path, document)
    except BackupError as exc:
        named = document.get("environment")
        if isinstance(named, str) and named != client.environment:
            exc.message += f" It also names environment {named!r}, not this app's {client.environment!r}."
            exc.args = (exc.message,)
        raise
    info = _info(path, document)
    expected = client.full_path(info.name) if _valid_name(info.name) else None
    if info.environment != client.environment or info.path != expected:
        raise BackupError(
            f"{path} is a backup of {info.path} (environment {info.environment!r}), but this app uses"
            f" environment {client.environment!r} ({expected or 'an invalid secret name'}). Refusing to restore"
            " it here; Vault is unchanged.",
            file=str(path),
            path=info.path,
        )
    encryption = document.get("encryption")
    if encryption is None:
        data = document["data"]
    else:
        data = _decrypt(path, document, encryption, client)
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) and k for k in data):
        raise BackupError(f"{path} holds no secret fields to restore; Vault is unchanged.", file=str(path))
    return Backup(info, dict(data))


def plan_restore(client: VaultClient, backup: Backup) -> WritePlan:
    """Plan writing a verified backup's data as the secret's new version (KV v2 only)."""
    require_kv2(client, "restore")
    current = read_current(client, backup.info.name, missing_ok=True, action="restore")
    return plan_write(client, backup.info.name, current, backup.data, action="restore")


def restore(client: VaultClient, store: BackupStore | None, file: str | os.PathLike[str]) -> ChangeResult:
    """Verify a backup file and write its data as the secret's new version (backup first, check-and-set).

    ``store`` (None: the client's own) receives the backup of the data being replaced.
    """
    return apply_write(client, plan_restore(client, load_backup(file, client)), store)


# -- internals -------------------------------------------------------------------------


def _read_document(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BackupError(f"{path} is {size} bytes, too big to be a backup; refusing it.", file=str(path))
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BackupError(f"No backup file at {path}; `flask vault backups` lists them.", file=str(path)) from None
    except OSError as exc:
        raise BackupError(f"Cannot read {path}: {exc.strerror or exc}.", file=str(path)) from exc
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BackupError(
            f"{path} is not a flask-vault backup (not UTF-8 text); refusing it.", file=str(path)
        ) from None
    except json.JSONDecodeError as exc:
        raise BackupError(
            f"{path} is truncated or damaged (invalid JSON at line {exc.lineno}, column {exc.colno});"
            " refusing it, Vault is unchanged.",
            file=str(path),
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BackupError(f"{path} is not a flask-vault backup file; refusing it.", file=str(path))
    return document


def _check_document(path: Path, document: dict[str, Any]) -> None:
    if document.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{path} has backup format version {document.get('format_version')!r}; this flask-vault reads"
            f" version {FORMAT_VERSION}. Refusing it.",
            file=str(path),
        )
    checksum = document.get("checksum")
    if not isinstance(checksum, str) or checksum != _checksum(document):
        raise BackupError(
            f"{path} has been edited or damaged: its checksum does not match its contents. Refusing it;"
            " Vault is unchanged.",
            file=str(path),
        )
    for key, kind in _HEADER_FIELDS.items():
        if key not in document or not isinstance(document[key], kind) or isinstance(document[key], bool):
            raise BackupError(f"{path} lacks a valid {key!r} field; refusing it.", file=str(path))
    encryption = document["encryption"]
    if encryption is None and not isinstance(document.get("data"), dict):
        raise BackupError(f"{path} has no 'data' object; refusing it.", file=str(path))
    if encryption is not None and not (
        encryption.get("engine") == "transit"
        and isinstance(encryption.get("mount"), str)
        and isinstance(encryption.get("key"), str)
        and isinstance(document.get("ciphertext"), str)
    ):
        raise BackupError(f"{path} names an encryption this flask-vault does not know; refusing it.", file=str(path))


def _info(path: Path, document: dict[str, Any]) -> BackupInfo:
    return BackupInfo(
        file=path,
        name=document["name"],
        environment=document["environment"],
        path=document["path"],
        version=document["version"],
        backed_up_at=document["backed_up_at"],
        reason=document["reason"],
        encrypted=document["encryption"] is not None,
    )


def _decrypt(path: Path, document: dict[str, Any], encryption: dict[str, Any], client: VaultClient) -> Any:
    header = {key: document[key] for key in _HEADER_FIELDS}
    try:
        plaintext = client.transit_decrypt(
            encryption["key"],
            document["ciphertext"],
            mount=encryption["mount"],
            associated_data=_canonical(header),
        )
    except VaultError as exc:
        raise BackupError(
            f"Transit key {encryption['key']!r} on mount {encryption['mount']!r} would not decrypt {path}"
            f" (edited, or encrypted with another key): {exc.message} Refusing it; Vault is unchanged.",
            file=str(path),
        ) from exc
    try:
        return json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BackupError(f"{path} decrypted to something that is not secret data; refusing it.") from None


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _checksum(document: dict[str, Any]) -> str:
    body = {key: value for key, value in document.items() if key != "checksum"}
    return "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()


def _file_safe(text: str) -> str:
    """Secret names and environments are already ``[A-Za-z0-9_.-]`` segments; flatten the ``/``."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "-", text.replace("/", "__"))


def _valid_name(name: str) -> bool:
    try:
        check_secret_name(name)
    except VaultError:
        return False
    return True


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
