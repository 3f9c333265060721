"""The ``flask vault`` command group, registered on the app by ``init_app``."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import click
from flask import current_app
from flask.cli import AppGroup
from flask.helpers import get_debug_flag

from flask_vault.client import VaultClient
from flask_vault.errors import SecretNotFoundError, VaultError
from flask_vault.health.format import format_report
from flask_vault.health.monitor import get_monitor
from flask_vault.ops.backup import BackupStore, load_backup, plan_restore
from flask_vault.ops.policies import TEMPLATES, render_policy
from flask_vault.ops.rotation import plan_rollback, plan_rotation
from flask_vault.ops.write import ChangeResult, apply_write, check_can_write, plan_put, require_kv2
from flask_vault.paths import check_secret_name
from flask_vault.rotation_rules import RotationRules
from flask_vault.state import VaultState, get_state

vault_cli = AppGroup("vault", help="Inspect and manage the app's Vault secrets.")

EXIT_CODES = {"pass": 0, "warn": 1, "fail": 2}


@vault_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the /health/vault document (with details) instead.")
def status_command(as_json: bool) -> None:
    """Server, login, secrets and cache, as /health/vault sees them (exit 0 pass, 1 warn, 2 fail).

    Always probes Vault afresh. Prints origins, versions and ages of the filled config
    keys; never a value, token or accessor.
    """
    report = get_monitor(get_state()).report(fresh=True)
    if as_json:
        click.echo(report.body(details=True).decode())
    else:
        click.echo(format_report(report))
    click.get_current_context().exit(EXIT_CODES[report.status])


# -- secrets: read, write, rotate, back up, restore ------------------------------------
#
# Each command parses, confirms, calls and prints. A write is planned by a function of
# flask_vault.ops (plan_put, plan_rotation, plan_rollback, plan_restore), confirmed, then
# carried out by flask_vault.ops.write.apply_write, the path VaultClient.set_secret and
# rotate_secret take too. Library errors become one-line ClickExceptions (exit 1);
# --debug (or `flask --debug`) shows the traceback instead. Values are masked unless
# `get --reveal`; writes ask for confirmation on a terminal.

MASK = "********"


class CommandError(click.ClickException):
    """A one-line error and exit code 1."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def vault_command(name: str, **attrs: Any) -> Callable[[Callable[..., None]], click.Command]:
    """``@vault_cli.command`` plus ``--debug`` and error translation."""

    def decorator(func: Callable[..., None]) -> click.Command:
        @functools.wraps(func)
        def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> None:
            _quiet_unconfigured_audit()
            try:
                func(*args, **kwargs)
            except (click.ClickException, click.Abort, click.exceptions.Exit):
                raise
            except VaultError as exc:
                if debug or get_debug_flag():
                    raise
                raise CommandError(exc.message) from None
            except Exception as exc:
                if debug or get_debug_flag():
                    raise
                raise CommandError(
                    f"Unexpected {type(exc).__name__}; run the command again with --debug for the traceback."
                ) from None

        debug_option = click.Option(["--debug"], is_flag=True, help="Show the traceback when something fails.")
        # click lists options in reverse order of this list: put --debug last in --help.
        wrapper.__click_params__ = [debug_option, *getattr(wrapper, "__click_params__", [])]  # type: ignore[attr-defined]
        return vault_cli.command(name, **attrs)(wrapper)

    return decorator


def _quiet_unconfigured_audit() -> None:
    """Keep audit records (meant for configured log handlers) off the screen when logging is not set up.

    Without any handler Python prints WARNING records to stderr, so every expected 404 or
    lost check-and-set would add an audit line to the command's one-line error.
    """
    audit_logger = logging.getLogger("flask_vault.audit")
    if not logging.getLogger().handlers and not audit_logger.handlers:
        audit_logger.addHandler(logging.NullHandler())


yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def _state() -> VaultState:
    return get_state()


def _client() -> VaultClient:
    client: VaultClient = _state().client
    return client


def _store(directory: str | None = None) -> BackupStore:
    return BackupStore.for_app(current_app, directory)


def _interactive() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _stdout_is_terminal() -> bool:
    return sys.stdout is not None and sys.stdout.isatty()


def _confirm(question: str, yes: bool) -> None:
    """Ask on a terminal (unless --yes); without one, go ahead as cron jobs need."""
    if not yes and _interactive():
        click.confirm(question, abort=True)


def _warn_plaintext(store: BackupStore) -> None:
    if store.plaintext_warning:
        click.echo(store.plaintext_warning, err=True)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [headers, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def _progress(items: list[str], label: str) -> Iterator[str]:
    """Iterate with click's progress bar on a terminal, plainly otherwise (cron logs)."""
    if not items or not _stdout_is_terminal():
        yield from items
        return
    with click.progressbar(items, label=label, show_pos=True, item_show_func=lambda n: n or "") as bar:
        yield from bar


def _describe(result: ChangeResult) -> str:
    fields = ", ".join(result.fields) or "no field changed"
    text = f"{result.path} ({fields})"
    if result.new_version is not None:  # KV v1 has no versions
        text += f": version {result.old_version or '-'} -> {result.new_version}"
    if result.database:
        text += f"; PostgreSQL {result.database} changed too"
    if result.backup:
        text += f"; backup: {result.backup}"
    return text


@vault_command("get")
@click.argument("name")
@click.option("--field", "field_name", help="Print only this field.")
@click.option("--version", type=click.IntRange(min=1), help="Read this KV v2 version (default: current).")
@click.option("--reveal", is_flag=True, help="Print the values (masked by default).")
def get_command(name: str, field_name: str | None, version: int | None, reveal: bool) -> None:
    """Show a secret's fields, values masked unless --reveal."""
    entry = _client().read_version(name, version)
    if field_name is not None:
        if field_name not in entry.data:
            present = ", ".join(sorted(entry.data)) or "none"
            raise CommandError(f"The secret at {entry.path} has no field {field_name!r}; fields present: {present}.")
        click.echo(_show(entry.data[field_name]) if reveal else MASK)
        return
    created = f", created {entry.created_time}" if entry.created_time else ""
    click.echo(f"{entry.path} (version {entry.version if entry.version is not None else '-'}{created})")
    for key in sorted(entry.data):
        click.echo(f"  {key}: {_show(entry.data[key]) if reveal else MASK}")


@vault_command("put")
@click.argument("name")
@click.option(
    "--from-file", "from_file", type=click.File("r", encoding="utf-8"), help="A JSON object of fields ('-': stdin)."
)
@click.option(
    "--field",
    "field_names",
    multiple=True,
    help="A field to set: its value comes from a hidden prompt, or from stdin when piped.",
)
@click.option("--merge", is_flag=True, help="Keep the fields you do not give (default: replace the data).")
@yes_option
def put_command(name: str, from_file: TextIO | None, field_names: tuple[str, ...], merge: bool, yes: bool) -> None:
    """Write a secret's fields: from a hidden prompt, --from-file FILE (JSON) or stdin; never from arguments."""
    check_secret_name(name)
    given = _read_put_input(from_file, field_names)
    client, store = _client(), _store()
    plan = plan_put(client, name, given, merge=merge)
    state = f"replacing version {plan.old_version}" if plan.current is not None else "a new secret"
    if plan.kv_version == 1 and plan.current is not None:
        state = "replacing the current data"
    _confirm(f"Write {', '.join(plan.fields) or 'unchanged data'} to {plan.path} ({state})?", yes)
    if plan.current is not None:
        _warn_plaintext(store)
    result = apply_write(client, plan, store)
    click.echo(f"wrote {_describe(result)}")
    if plan.postgres_login and "password" in result.fields:
        click.echo(
            "note: only Vault changed; the PostgreSQL role keeps its password."
            f" `flask vault rotate --secret {name}` changes both.",
            err=True,
        )


def _read_put_input(from_file: TextIO | None, field_names: tuple[str, ...]) -> dict[str, Any]:
    if from_file is not None:
        if field_names:
            raise click.UsageError("Give either --from-file or --field, not both.")
        return _parse_fields(from_file.read(), "--from-file", json_only=True)
    if not _interactive():
        text = sys.stdin.read()
        if field_names:
            if len(field_names) != 1:
                raise click.UsageError("From stdin, give exactly one --field (or pipe a JSON object without --field).")
            value = text[:-1] if text.endswith("\n") else text
            value = value[:-1] if value.endswith("\r") else value
            if not value:
                raise CommandError(f"No value on stdin for field {field_names[0]!r}; nothing was written.")
            return {field_names[0]: value}
        return _parse_fields(text, "stdin", json_only=False)
    names = list(field_names)
    if not names:
        while True:
            field_name = click.prompt("Field name (empty to finish)", default="", show_default=False).strip()
            if not field_name:
                break
            names.append(field_name)
    values = {f: click.prompt(f"Value for {f}", hide_input=True, confirmation_prompt=True) for f in names}
    if not values:
        raise CommandError("No fields given; nothing was written.")
    return values


def _parse_fields(text: str, source: str, *, json_only: bool) -> dict[str, Any]:
    stripped = text.strip()
    if not stripped:
        raise CommandError(
            f'No data on {source}: give a JSON object such as {{"api_key": "..."}} (or FIELD=VALUE lines on stdin).'
        )
    if stripped.startswith("{") or json_only:
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}).") from None
        if not isinstance(data, dict) or not data:
            raise CommandError(f"{source} must hold a non-empty JSON object of field names to values.")
        return data
    data = {}
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"{source} line {number} is not FIELD=VALUE (nor is the input a JSON object).")
        data[key.strip()] = value
    return data


@vault_command("list")
def list_command() -> None:
    """Names of the secrets under <prefix>/<environment>/."""
    client = _client()
    names = client.list_secrets()
    for name in names:
        click.echo(name)
    if not names:
        root = "/".join(p for p in (client.mount_point, client.path_prefix, client.environment) if p)
        click.echo(f"no secrets under {root}/", err=True)


@vault_command("versions")
@click.argument("name")
def versions_command(name: str) -> None:
    """A secret's KV v2 versions, newest first (no values)."""
    client = _client()
    require_kv2(client, "versions")
    meta = client.read_metadata(name)
    current = meta.get("current_version")
    kept = meta.get("max_versions") or "the mount's default number of"
    click.echo(
        f"{client.full_path(name)}: current version {current}, keeps {kept} versions,"
        f" cas_required={str(bool(meta.get('cas_required'))).lower()}"
    )
    rows = []
    for number, info in sorted((meta.get("versions") or {}).items(), key=lambda item: -int(item[0])):
        if info.get("destroyed"):
            state = "destroyed"
        elif info.get("deletion_time"):
            state = f"deleted {info['deletion_time']}"
        else:
            state = "current" if int(number) == current else "kept"
        rows.append([str(number), info.get("created_time") or "", state])
    click.echo(_table(["VERSION", "CREATED", "STATE"], rows))


@vault_command("rotate")
@click.option("--all", "rotate_all", is_flag=True, help="Every secret that has rotation settings.")
@click.option("--secret", "name", help="One secret, e.g. flask.")
@click.option("--field", "field_names", multiple=True, help="Only this field (with --secret; repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would rotate; change nothing.")
@yes_option
def rotate_command(rotate_all: bool, name: str | None, field_names: tuple[str, ...], dry_run: bool, yes: bool) -> None:
    """Give secret fields strong new values (backup first, check-and-set)."""
    if rotate_all == bool(name):
        raise click.UsageError("Give --all or --secret NAME.")
    if field_names and not name:
        raise click.UsageError("--field needs --secret NAME.")
    client, store = _client(), _store()
    rules = _state().settings.rotation
    if name:
        _rotate_one(client, store, rules, name, field_names, dry_run, yes)
    else:
        _rotate_all(client, store, rules, dry_run, yes)


def _rotate_one(
    client: VaultClient,
    store: BackupStore,
    rules: RotationRules,
    name: str,
    field_names: tuple[str, ...],
    dry_run: bool,
    yes: bool,
) -> None:
    plan = plan_rotation(client, name, rules, field_names)
    if dry_run:
        check_can_write(client, plan, store)
        click.echo(f"would {plan.summary()}, after a backup in {store.directory}")
        return
    database = f" and the password of PostgreSQL {plan.database}" if plan.database else ""
    _confirm(f"Rotate {', '.join(plan.fields)} of {plan.path} (version {plan.old_version}){database}?", yes)
    _warn_plaintext(store)
    click.echo(f"rotated {_describe(apply_write(client, plan, store))}")


def _rotate_all(client: VaultClient, store: BackupStore, rules: RotationRules, dry_run: bool, yes: bool) -> None:
    present = set(client.list_secrets())
    targets = [n for n in rules.names() if n in present]
    rows: list[list[str]] = []
    skipped = [[n, "-", "-", "skipped: no rotation settings", ""] for n in sorted(present - set(rules.names()))]
    skipped += [[n, "-", "-", "skipped: not in Vault", ""] for n in rules.names() if n not in present]
    if not dry_run and targets:
        folder = "/".join(p for p in (client.mount_point, client.path_prefix, client.environment) if p)
        _confirm(f"Rotate {', '.join(targets)} in {folder}/?", yes)
        _warn_plaintext(store)
    errors: list[str] = []
    for name in _progress(targets, "rotating"):
        fields = ", ".join(rule.field for rule in rules.fields_for(name))
        try:
            plan = plan_rotation(client, name, rules)
            if dry_run:
                check_can_write(client, plan, store)
                db = " (+ PostgreSQL)" if plan.database else ""
                rows.append([name, fields, f"{plan.old_version} -> {plan.next_version}", f"would rotate{db}", ""])
                continue
            result = apply_write(client, plan, store)
        except SecretNotFoundError as exc:
            if name in rules.configured:
                errors.append(f"{name}: {exc.message}")
                rows.append([name, fields, "-", f"FAILED ({len(errors)})", ""])
            else:  # a built-in default (e.g. a database secret that is only a URL)
                rows.append([name, fields, "-", "skipped: fields not present", ""])
            continue
        except VaultError as exc:
            errors.append(f"{name}: {exc.message}")
            rows.append([name, fields, "-", f"FAILED ({len(errors)})", ""])
            continue
        status = "rotated" + (" (+ PostgreSQL)" if result.database else "")
        backup = result.backup.name if result.backup else ""
        rows.append([name, fields, f"{result.old_version} -> {result.new_version}", status, backup])
    click.echo(_table(["SECRET", "FIELDS", "VERSION", "RESULT", "BACKUP"], rows + skipped))
    for number, message in enumerate(errors, start=1):
        click.echo(f"({number}) {' '.join(message.split())}")
    if not dry_run and any(row[3].startswith("rotated") for row in rows):
        click.echo(f"backups in {store.directory}")
    if errors:
        raise CommandError(f"{len(errors)} of {len(targets)} rotation(s) failed; see above.")


@vault_command("rollback")
@click.argument("name")
@click.option("--version", type=click.IntRange(min=1), required=True, help="The version whose data to bring back.")
@yes_option
def rollback_command(name: str, version: int, yes: bool) -> None:
    """Write version N's data as a new version (history is kept)."""
    client, store = _client(), _store()
    plan = plan_rollback(client, name, version)
    _confirm(f"Write version {version}'s data to {plan.path} as a new version (current: {plan.old_version})?", yes)
    _warn_plaintext(store)
    result = apply_write(client, plan, store)
    click.echo(f"rolled back to version {version}: {_describe(result)}")


@vault_command("backup")
@click.argument("name", required=False)
@click.option("--all", "backup_all", is_flag=True, help="Every secret under <prefix>/<environment>/.")
@click.option("--out", "out", type=click.Path(file_okay=False), help="Directory (default: VAULT_BACKUP_DIR).")
def backup_command(name: str | None, backup_all: bool, out: str | None) -> None:
    """Write backup files of the current version of one or every secret."""
    if backup_all == bool(name):
        raise click.UsageError("Give a secret NAME or --all.")
    client, store = _client(), _store(out)
    names = client.list_secrets() if backup_all else [check_secret_name(name)]
    _warn_plaintext(store)
    for secret in _progress(names, "backing up"):
        entry = client.read_version(secret)
        file = store.save(secret, entry, reason="backup")
        click.echo(f"backed up {entry.path} version {entry.version if entry.version is not None else '-'} -> {file}")
    if not names:
        click.echo("no secrets to back up", err=True)


@vault_command("backups")
@click.argument("name", required=False)
@click.option("--dir", "directory", type=click.Path(file_okay=False), help="Directory (default: VAULT_BACKUP_DIR).")
def backups_command(name: str | None, directory: str | None) -> None:
    """List backup files, newest first (no values)."""
    store = _store(directory)
    infos = store.list(name)
    if not infos:
        click.echo(f"no backups in {store.directory}", err=True)
        return
    rows = [
        [
            info.file.name,
            info.name,
            info.environment,
            "-" if info.version is None else str(info.version),
            info.backed_up_at,
            info.reason,
            "transit" if info.encrypted else "plaintext",
            "ok" if info.problem is None else f"DAMAGED: {info.problem}",
        ]
        for info in infos
    ]
    click.echo(f"backups in {store.directory}")
    click.echo(_table(["FILE", "SECRET", "ENV", "VERSION", "TAKEN (UTC)", "REASON", "STORED", "CHECK"], rows))


@vault_command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@yes_option
def restore_command(file: str, yes: bool) -> None:
    """Verify a backup file and write its data as the secret's new version."""
    client, store = _client(), _store()
    require_kv2(client, "restore")
    backup = load_backup(file, client)
    info = backup.info
    plan = plan_restore(client, backup)
    now = f"current: version {plan.old_version}" if plan.current is not None else "the secret does not exist now"
    _confirm(f"Restore {info.path} to the data of version {info.version} backed up {info.backed_up_at} ({now})?", yes)
    _warn_plaintext(store)
    result = apply_write(client, plan, store)
    click.echo(f"restored version {info.version} from {file}: {_describe(result)}")


@vault_command("policy")
@click.argument("kind", type=click.Choice(sorted(TEMPLATES)))
def policy_command(kind: str) -> None:
    """Print the least-privilege app or rotator policy for this app's paths (HCL)."""
    settings = _state().settings
    click.echo(
        render_policy(
            kind,
            mount=settings.mount_point,
            prefix=settings.path_prefix,
            environment=settings.environment,
            transit_mount=settings.transit_mount,
            transit_key=settings.backup_transit_key,
        ),
        nl=False,
    )
