"""Backup files of secret versions: written safely, verified before any restore.

A backup is one JSON file per secret version, named
``<name>_<environment>_<UTC timestamp>.json`` in ``VAULT_BACKUP_DIR`` (default: the
app's instance folder, ``vault-backups/``; for a ``VaultClient`` outside an app, the
user's state directory, see :func:`default_backup_dir`). Every write of an existing
secret, by the CLI or the library, saves one first (:mod:`flask_vault.ops.write`).
The directory is created 0700; an existing one that is a symlink, another user's or
open to group/others is refused, never changed. Each file is 0600, written to a
temporary file, synced and then linked into place, so a crash never leaves a
half-written backup under a real name.

Each file carries a header (secret name, mount, prefix, environment, KV path and
version, reason, time), the data, and a SHA-256 checksum of everything else. When
``VAULT_BACKUP_TRANSIT_KEY`` names a Transit key the data is encrypted by Vault's
Transit engine with the header as associated data. Without it the data is stored as
plaintext (the CLI warns once per command that wrote one).

What protects what:

* the **checksum** catches accidents (a truncated copy, a careless edit): anyone can
  recompute it, so it proves nothing against someone who edits a file on purpose;
* **Transit** catches tampering: without the key (which never leaves Vault) nobody can
  make a ciphertext that decrypts, nor change a header without the decryption failing.
  So an app that encrypts refuses plaintext files unless told otherwise
  (``--allow-plaintext``).

A file is never trusted to say where a request goes: :func:`check_backup` verifies it
without asking Vault (names held to the rules settings follow; the mount, app prefix,
environment and Transit mount and key must be this app's own), and only then, after
the operator agreed, :func:`open_backup` decrypts it with the configured key and
:func:`restore` writes it back through the write path (:func:`plan_restore`, then
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask_vault.cache import CachedSecret
from flask_vault.display import safe_repr, safe_text
from flask_vault.errors import BackupError, VaultConfigError, VaultError
from flask_vault.ops.write import ChangeResult, WritePlan, apply_write, plan_write, read_current, require_kv2
from flask_vault.paths import NAME_RULE, check_path_part, check_secret_name
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
        #: How many backup files this store has written (the CLI warns about plaintext only after one was).
        self.saved = 0

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
            file = self._save(name, entry, reason=reason)
        self.saved += 1
        return file

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
        """The directory, created 0700 when missing; an existing one must already be private.

        An existing directory that is a symlink, belongs to another user or is open to
        group or others is refused (:class:`BackupError`, saying how to fix it), never
        changed: it may be a shared directory someone pointed ``VAULT_BACKUP_DIR`` at.
        """
        directory = self.directory
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass  # somebody's directory, or a file: checked below, never changed
        except OSError as exc:
            raise self._unusable(f"cannot create it: {exc.strerror or exc}") from exc
        else:
            try:
                os.chmod(directory, 0o700)  # what we just made: the umask may have masked 0700 further
            except OSError as exc:
                raise self._unusable(f"cannot set its mode: {exc.strerror or exc}") from exc
            log.info("Created the backup directory %s (mode 700).", directory)
            return directory
        self._check_private()
        return directory

    def _check_private(self) -> None:
        directory = self.directory
        try:
            info = os.lstat(directory)
        except OSError as exc:
            raise self._unusable(f"cannot read it: {exc.strerror or exc}") from exc
        if stat.S_ISLNK(info.st_mode):
            raise self._unusable(
                f"it is a symbolic link (to {os.readlink(directory)}). Point VAULT_BACKUP_DIR at the real"
                " directory, or use a private one of your own"
            )
        if not stat.S_ISDIR(info.st_mode):
            raise self._unusable("it is not a directory. Set VAULT_BACKUP_DIR to a directory")
        if info.st_uid != os.geteuid():
            raise self._unusable(
                f"it belongs to another user (uid {info.st_uid}, this process runs as uid {os.geteuid()})."
                " Use a directory of this user's, or run as its owner"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise self._unusable(
                f"it is open to group or others (mode {mode:o}). Run `chmod 700 {directory}` if only this user"
                " should read it, or choose another directory"
            )

    def _unusable(self, why: str) -> BackupError:
        return BackupError(
            f"Refusing the backup directory {self.directory}: {why}. Set VAULT_BACKUP_DIR to change it."
            " Nothing was changed in Vault.",
            file=str(self.directory),
        )

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

    def load(self, file: str | os.PathLike[str], *, allow_plaintext: bool = False) -> Backup:
        """Read, verify and decrypt a backup for this client's app; see :func:`load_backup`."""
        return load_backup(file, self.client, store=self, allow_plaintext=allow_plaintext)


def read_info(path: Path) -> BackupInfo:
    """The header of a backup file, with ``problem`` set when it does not verify.

    Text read from the file (names, reason, times) is kept as it is; show it through
    :func:`flask_vault.display.safe_text`.
    """
    try:
        document = _read_document(path)
        _check_document(path, document)
    except BackupError as exc:
        stamp = datetime.fromtimestamp(_mtime(path), timezone.utc).isoformat(timespec="microseconds")
        return BackupInfo(path, "?", "?", "?", None, stamp.replace("+00:00", "Z"), "?", False, exc.message)
    return _info(path, document)


@dataclass(frozen=True)
class BackupFile:
    """A backup file verified without asking Vault: intact, meant for this app, sealed as this store seals.

    Made by :func:`check_backup`; :func:`open_backup` then decrypts it (an encrypted
    file) with the store's own Transit key. Nothing in a file decides where a request goes.
    """

    info: BackupInfo
    #: The Transit mount and key that will decrypt it (the configured ones), or None for plaintext.
    transit: tuple[str, str] | None
    document: dict[str, Any] = field(repr=False)


def check_backup(
    file: str | os.PathLike[str],
    client: VaultClient,
    *,
    store: BackupStore | None = None,
    allow_plaintext: bool = False,
) -> BackupFile:
    """Verify a backup file for ``client``'s app without sending anything to Vault.

    Refused with :class:`BackupError`: a missing, too big, truncated or edited file
    (checksum), one whose names break the rules settings follow, one of another mount,
    app (prefix) or environment, one encrypted with a Transit mount or key other than
    ``store``'s (default: the client's own store, as ``VAULT_TRANSIT_MOUNT`` and
    ``VAULT_BACKUP_TRANSIT_KEY`` say), and a plaintext file when the store encrypts,
    unless ``allow_plaintext``.
    """
    store = store if store is not None else client.backups
    path = Path(file)
    document = _read_document(path)
    try:
        _check_document(path, document)
    except BackupError as exc:
        named = document.get("environment")
        if isinstance(named, str) and named != client.environment:
            exc.message += f" It also names environment {safe_repr(named)}, not this app's {client.environment!r}."
            exc.args = (exc.message,)
        raise
    _check_names(path, document)
    info = _info(path, document)
    _check_destination(path, document, info, client)
    return BackupFile(info, _check_sealing(path, document, store, allow_plaintext), document)


def open_backup(client: VaultClient, checked: BackupFile) -> Backup:
    """The data of a checked backup file, decrypted (when encrypted) with the configured Transit key.

    This is the first request made on a backup file's behalf: call it once the
    operator has agreed to the restore.
    """
    path, document = checked.info.file, checked.document
    data = document["data"] if checked.transit is None else _decrypt(path, document, checked.transit, client)
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) and k for k in data):
        raise BackupError(f"{path} holds no secret fields to restore; Vault is unchanged.", file=str(path))
    return Backup(checked.info, dict(data))


def load_backup(
    file: str | os.PathLike[str],
    client: VaultClient,
    *,
    store: BackupStore | None = None,
    allow_plaintext: bool = False,
) -> Backup:
    """Verify (:func:`check_backup`) and decrypt (:func:`open_backup`) a backup meant for ``client``'s app.

    Raises :class:`BackupError` for a file :func:`check_backup` refuses, or one Transit
    will not decrypt.
    """
    return open_backup(client, check_backup(file, client, store=store, allow_plaintext=allow_plaintext))


def plan_restore(client: VaultClient, backup: Backup) -> WritePlan:
    """Plan writing a verified backup's data as the secret's new version (KV v2 only)."""
    require_kv2(client, "restore")
    current = read_current(client, backup.info.name, missing_ok=True, action="restore")
    return plan_write(client, backup.info.name, current, backup.data, action="restore")


def restore(
    client: VaultClient,
    store: BackupStore | None,
    file: str | os.PathLike[str],
    *,
    allow_plaintext: bool = False,
) -> ChangeResult:
    """Verify a backup file and write its data as the secret's new version (backup first, check-and-set).

    ``store`` (None: the client's own) decides how the file must be sealed (see
    :func:`check_backup`) and receives the backup of the data being replaced.
    """
    backup = load_backup(file, client, store=store, allow_plaintext=allow_plaintext)
    return apply_write(client, plan_restore(client, backup), store)


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


def _check_names(path: Path, document: dict[str, Any]) -> None:
    """Every name a file gives is held to the rules its setting follows, before it is used or compared."""
    encryption = document["encryption"] or {}
    checks: list[tuple[str, object, Callable[[str, str], str]]] = [
        ("name", document["name"], lambda _k, v: check_secret_name(v)),
        ("mount", document["mount"], check_path_part),
        ("environment", document["environment"], check_path_part),
        ("encryption mount", encryption.get("mount"), check_path_part),
        ("encryption key", encryption.get("key"), check_path_part),
    ]
    if document["prefix"] is not None:
        checks.append(("prefix", document["prefix"], check_path_part))
    for label, value, check in checks:
        if value is None and label.startswith("encryption"):
            continue
        try:
            check(label, value)  # type: ignore[arg-type]  # _check_document made them strings
        except VaultConfigError:
            raise BackupError(
                f"{path} names an invalid {label} {safe_repr(value)}: names must be {NAME_RULE}. Refusing it;"
                " nothing was sent to Vault.",
                file=str(path),
            ) from None


def _check_destination(path: Path, document: dict[str, Any], info: BackupInfo, client: VaultClient) -> None:
    """Refuse a file of another mount, app (prefix) or environment, or whose path is not its name's."""
    ours = {"mount": client.mount_point, "prefix": client.path_prefix, "environment": client.environment}
    for key, expected in ours.items():
        if document[key] != expected:
            what = "app (prefix)" if key == "prefix" else key
            raise BackupError(
                f"{path} is a backup of {safe_text(info.path)} ({what} {safe_repr(document[key])}), but this app uses"
                f" {what} {expected!r} ({client.full_path(info.name)}). Refusing to restore it here; nothing was"
                " sent to Vault.",
                file=str(path),
                path=safe_text(info.path),
            )
    if info.path != client.full_path(info.name):
        raise BackupError(
            f"{path} names the path {safe_repr(info.path)}, not {client.full_path(info.name)!r} where its secret"
            f" {info.name!r} lives. Refusing it; nothing was sent to Vault.",
            file=str(path),
            path=safe_text(info.path),
        )


def _check_sealing(
    path: Path, document: dict[str, Any], store: BackupStore, allow_plaintext: bool
) -> tuple[str, str] | None:
    """The (mount, key) that will decrypt the file: the store's own, never one the file names."""
    encryption = document["encryption"]
    if encryption is None:
        if store.encrypted and not allow_plaintext:
            raise BackupError(
                f"{path} holds plaintext data, but this app encrypts its backups (VAULT_BACKUP_TRANSIT_KEY"
                f" {store.transit_key!r}), so it did not write this file: anyone who can write to the backup"
                " directory could have. Refusing it; give --allow-plaintext (allow_plaintext=True) if you know"
                " where it came from.",
                file=str(path),
            )
        return None
    if not store.encrypted:
        raise BackupError(
            f"{path} is encrypted with Transit key {safe_repr(encryption['key'])} on mount"
            f" {safe_repr(encryption['mount'])}, but this app has no VAULT_BACKUP_TRANSIT_KEY. Set"
            " VAULT_BACKUP_TRANSIT_KEY (and VAULT_TRANSIT_MOUNT) to them to restore it; nothing was sent to Vault.",
            file=str(path),
        )
    assert store.transit_key is not None
    configured = (store.transit_mount, store.transit_key)
    if (encryption["mount"], encryption["key"]) != configured:
        raise BackupError(
            f"{path} names Transit key {safe_repr(encryption['key'])} on mount {safe_repr(encryption['mount'])},"
            f" but this app encrypts with key {store.transit_key!r} on mount {store.transit_mount!r}"
            " (VAULT_BACKUP_TRANSIT_KEY, VAULT_TRANSIT_MOUNT). Only those are used: refusing it; nothing was sent"
            " to Vault.",
            file=str(path),
        )
    return configured


def _decrypt(path: Path, document: dict[str, Any], transit: tuple[str, str], client: VaultClient) -> Any:
    mount, key = transit
    header = {name: document[name] for name in _HEADER_FIELDS}
    try:
        plaintext = client.transit_decrypt(key, document["ciphertext"], mount=mount, associated_data=_canonical(header))
    except VaultError as exc:
        raise BackupError(
            f"Transit key {key!r} on mount {mount!r} would not decrypt {path} (edited, or encrypted with another"
            f" key): {exc.message} Refusing it; Vault is unchanged.",
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
