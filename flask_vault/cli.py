"""The ``flask vault`` command group.

The group is a Flask CLI plugin (the ``flask.commands`` entry point ``vault``) and is also
added to the app's own ``app.cli`` by ``init_app``. As a plugin, Flask's CLI finds it
without loading the app, so ``flask vault --help`` (and any ``--help``) never loads the app
nor contacts Vault. Each command then loads the app itself, after its arguments are parsed,
telling ``init_app`` how (:func:`flask_vault.state.set_load_mode`): ``cli`` for the commands
that use Vault (one quick attempt, a secret that is missing is reported, not fatal) and
``offline`` for ``policy`` (no request at all). A server (``flask run``, gunicorn, a test
client) loads the app the ordinary way and still refuses to start without its secrets.
When the app is already loaded (``app.test_cli_runner()``, or an app whose ``vault`` group
Flask found on ``app.cli``), commands use it as it is.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import click
from flask import Flask, current_app
from flask.cli import AppGroup, NoAppException, ScriptInfo
from flask.helpers import get_debug_flag

from flask_vault.auth.census import count_role_tokens
from flask_vault.client import VaultClient
from flask_vault.display import closest, did_you_mean, safe_repr, safe_text
from flask_vault.errors import SecretNotFoundError, VaultError
from flask_vault.health.format import format_report
from flask_vault.health.monitor import get_monitor
from flask_vault.mapping import keys_by_name
from flask_vault.ops.backup import BackupStore, check_backup, open_backup, plan_restore
from flask_vault.ops.bootstrap import (
    OPTIONAL_DATABASE_FIELDS,
    InitItem,
    InitPlan,
    apply_init,
    check_complete,
    check_given,
    plan_init,
)
from flask_vault.ops.policies import KV_VERSIONS, TEMPLATES, render_policy
from flask_vault.ops.rotation import plan_rollback, plan_rotation
from flask_vault.ops.write import (
    ChangeResult,
    WritePlan,
    apply_write,
    check_can_write,
    created_or_changed,
    plan_put,
    require_kv2,
)
from flask_vault.paths import check_field_name, check_secret_name
from flask_vault.rotation_rules import PROTECTED_FIELDS, RotationRules
from flask_vault.state import CLI, OFFLINE, VaultState, find_state, get_state, reset_load_mode, set_load_mode
from flask_vault.vault.translate import path_settings

vault_cli = AppGroup("vault", help="Inspect and manage the app's Vault secrets.")

EXIT_CODES = {"pass": 0, "warn": 1, "fail": 2}


# -- loading the app for a command -------------------------------------------------


class AppLoadError(Exception):
    """Loading the app for a command failed with something other than a VaultError."""


@contextmanager
def app_for_command(mode: str) -> Iterator[Flask]:
    """The current app, or the app loaded now in ``mode`` (see :func:`flask_vault.state.load_mode`)."""
    if current_app:
        yield current_app._get_current_object()  # type: ignore[attr-defined]  # werkzeug LocalProxy API
        return
    info = click.get_current_context().ensure_object(ScriptInfo)
    token = set_load_mode(mode)
    try:
        app = info.load_app()
    except (VaultError, NoAppException):
        raise
    except Exception as exc:
        raise AppLoadError(
            f"Loading the app failed: {type(exc).__name__} raised in {_where(exc)}. Under `flask vault` a secret"
            " that Vault cannot provide is left unset: if the app's factory needs it (as Flask-SQLAlchemy needs"
            " SQLALCHEMY_DATABASE_URI), see 'Apps that need a secret at start-up' in docs/cli.md. Run the command"
            " again with --debug for the traceback."
        ) from exc
    finally:
        reset_load_mode(token)
    with app.app_context():
        yield app


def _where(exc: BaseException) -> str:
    """``file:line (function)`` of the innermost frame: where, never what (the message may hold a value)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "the app's factory"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} ({frame.name})"


# -- secrets: read, write, rotate, back up, restore ------------------------------------
#
# Each command parses, confirms, calls and prints. A write is planned by a function of
# flask_vault.ops (plan_put, plan_rotation, plan_rollback, plan_restore), confirmed, then
# carried out by flask_vault.ops.write.apply_write, the path VaultClient.set_secret and
# rotate_secret take too. Library errors become one-line ClickExceptions (exit 1);
# --debug (or `flask --debug`) shows the traceback instead. Values are masked unless
# `get --reveal`; writes ask for confirmation on a terminal.

MASK = "********"
#: Longest error line (our messages are shorter; this bounds text quoted from outside).
_MESSAGE_LIMIT = 2000
#: Longest table cell (a damaged backup's problem names its file).
_CELL_LIMIT = 400


class CommandError(click.ClickException):
    """A one-line error and exit code 1."""

    def __init__(self, message: str) -> None:
        # One line, whatever Vault's or a file's text inside it held.
        super().__init__(safe_text(" ".join(message.split()), _MESSAGE_LIMIT))


def vault_command(name: str, *, load: str = CLI, **attrs: Any) -> Callable[[Callable[..., None]], click.Command]:
    """``@vault_cli.command`` plus ``--debug``, the app loaded in ``load`` mode, and error translation."""

    def decorator(func: Callable[..., None]) -> click.Command:
        @functools.wraps(func)
        def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> None:
            if not (debug or get_debug_flag()):
                _quiet_unconfigured("flask_vault")
            try:
                with app_for_command(load):
                    func(*args, **kwargs)
            except (click.ClickException, click.Abort, click.exceptions.Exit):
                raise
            except VaultError as exc:
                if debug or get_debug_flag():
                    raise
                raise CommandError(exc.message) from None
            except AppLoadError as exc:
                if exc.__cause__ is not None and (debug or get_debug_flag()):
                    raise exc.__cause__ from None
                raise CommandError(str(exc)) from None
            except Exception as exc:
                if debug or get_debug_flag():
                    raise
                raise CommandError(
                    f"Unexpected {type(exc).__name__}; run the command again with --debug for the traceback."
                ) from None

        debug_option = click.Option(["--debug"], is_flag=True, help="Show the traceback when something fails.")
        # click lists options in reverse order of this list: put --debug last in --help.
        wrapper.__click_params__ = [debug_option, *getattr(wrapper, "__click_params__", [])]  # type: ignore[attr-defined]
        # The app is loaded by app_for_command, not by Flask's with_appcontext (which would load it first).
        return vault_cli.command(name, with_appcontext=False, **attrs)(wrapper)

    return decorator


def _quiet_unconfigured(name: str) -> None:
    """Keep log records (meant for configured log handlers) off the screen when logging is not set up.

    Without any handler Python prints WARNING records to stderr, so every expected 404 or
    lost check-and-set would add an audit line to the command's one-line error, and a
    process that has nothing cached would say it serves cached secrets. The command
    reports what matters itself; ``--debug`` shows the records too.
    """
    logger = logging.getLogger(name)
    if not logging.getLogger().handlers and not logger.handlers:
        logger.addHandler(logging.NullHandler())
        settings_log = logging.getLogger("flask_vault.settings")
        if not any(isinstance(handler, _SettingWarnings) for handler in settings_log.handlers):
            settings_log.addHandler(_SettingWarnings())


class _SettingWarnings(logging.Handler):
    """A misspelt or misplaced setting (``VAULT_ENVIROMENT``) is said on stderr even when logging is not set up:
    the command's own report would otherwise look right for the settings it silently fell back to."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {safe_text(record.getMessage(), _MESSAGE_LIMIT)}", err=True)


yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


class _NoNulPath(click.Path):
    """click.Path that refuses a path with a NUL byte as a usage error (the OS would raise ValueError)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\x00" in value:
            self.fail("a path cannot contain a NUL byte.", param, ctx)
        return super().convert(value, param, ctx)


class _NoNulFile(click.File):
    """click.File that refuses a path with a NUL byte as a usage error."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "\x00" in value:
            self.fail("a path cannot contain a NUL byte.", param, ctx)
        return super().convert(value, param, ctx)


def _state() -> VaultState:
    if find_state() is None:
        raise CommandError(
            f"FlaskVault is not registered on the app {current_app.name!r}: call vault.init_app(app) in the app"
            " (or point --app at the app that does)."
        )
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


class ConfirmationNeeded(click.ClickException):
    """A command that writes to Vault, run without a terminal and without --yes (exit 2)."""

    exit_code = 2


def _require_yes_or_terminal(yes: bool) -> None:
    """Before anything is read or sent: without a terminal to ask on, a write needs --yes.

    ssh without -t, a subprocess, ``</dev/null`` and cron have no terminal; going ahead
    there would make every write unconfirmed by accident.
    """
    if not yes and not _interactive():
        command = f"flask vault {click.get_current_context().info_name}"
        raise ConfirmationNeeded(
            f"`{command}` writes to Vault and there is no terminal to confirm on: add --yes to go ahead."
            " Nothing was changed."
        )


def _confirm(question: str, yes: bool) -> None:
    """Ask on a terminal unless --yes (a command without either was refused at its start)."""
    if not yes:
        _require_yes_or_terminal(yes)
        click.confirm(question, abort=True)


@contextmanager
def _plaintext_notice(store: BackupStore) -> Iterator[None]:
    """Warn (once, on stderr) that backups are plaintext when the block wrote one, failing or not."""
    before = store.saved
    try:
        yield
    finally:
        if store.saved > before and store.plaintext_warning:
            click.echo(store.plaintext_warning, err=True)


#: Longest revealed value shown in a listing (`get --reveal`); `get --field F --reveal` prints it whole.
_VALUE_LIMIT = 4096


def _show(value: Any) -> str:
    """A value (only with --reveal) on one line, control characters escaped."""
    return safe_text(value if isinstance(value, str) else json.dumps(value), _VALUE_LIMIT)


def _version_text(version: int | None) -> str:
    return "-" if version is None else str(version)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows as aligned columns; every cell escaped and bounded (text from files and Vault)."""
    rows = [[safe_text(cell, _CELL_LIMIT) for cell in row] for row in rows]
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
    fields = safe_text(", ".join(result.fields)) or "no field changed"
    text = f"{result.path} ({fields})"
    if result.new_version is not None:  # KV v1 has no versions
        text += created_or_changed(result.old_version, result.new_version)
    if result.database:
        text += f"; PostgreSQL {result.database} changed too"
    if result.backup:
        text += f"; backup: {result.backup}"
    return text


@vault_command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the /health/vault document (with details) instead.")
@click.option(
    "--tokens",
    is_flag=True,
    help="Also count the live tokens of the app's login role, to spot a leak (one request per token; the policy"
    " must allow listing auth/token/accessors).",
)
@click.option(
    "--role",
    metavar="ROLE",
    help="With --tokens: count the tokens of this login role (the app's, when an operator's token runs the command)"
    " instead of the role of the token in use.",
)
def status_command(as_json: bool, tokens: bool, role: str | None) -> None:
    """Server, login, secrets and cache, as /health/vault sees them (exit 0 pass, 1 warn, 2 fail).

    Always probes Vault afresh, from this process: a secret Vault cannot give now is a
    failure here, even while running servers still serve it from their caches. One line
    per check and per config key, each problem with what to do next; never a value,
    token or accessor.
    """
    state = _state()
    report = get_monitor(state).report(fresh=True)
    if role is not None and not tokens:
        raise click.UsageError("--role names whose tokens --tokens counts: add --tokens.")
    census = count_role_tokens(state.client.keeper, role=role) if tokens else None
    if as_json:
        body = report.body(details=True).decode()
        click.echo(body if census is None else json.dumps({**json.loads(body), "tokens": census.as_dict()}))
    else:
        click.echo(format_report(report))
        if census is not None:
            click.echo(census.describe())
    click.get_current_context().exit(EXIT_CODES[report.status])


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
            present = safe_text(", ".join(sorted(entry.data))) or "none"
            raise CommandError(
                f"The secret at {entry.path} has no field {safe_repr(field_name)}; fields present: {present}."
                + did_you_mean(field_name, entry.data)
            )
        value = entry.data[field_name]
        # The one raw output: for `$(flask vault get NAME --field F --reveal)` and pipes.
        click.echo((value if isinstance(value, str) else json.dumps(value)) if reveal else MASK)
        return
    created = f", created {safe_text(entry.created_time)}" if entry.created_time else ""
    click.echo(f"{entry.path} (version {_version_text(entry.version)}{created})")
    for key in sorted(entry.data):
        click.echo(f"  {safe_text(key)}: {_show(entry.data[key]) if reveal else MASK}")


@vault_command("put", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name")
@click.option(
    "--from-file", "from_file", type=_NoNulFile("r", encoding="utf-8"), help="A JSON object of fields ('-': stdin)."
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
    _refuse_extra_arguments()
    check_secret_name(name)
    for position, field_name in enumerate(field_names, start=1):
        try:
            check_field_name(field_name, argument=f"--field ({_ordinal(position)})")
        except VaultError as exc:
            raise click.UsageError(exc.message) from None
    _require_yes_or_terminal(yes)
    given = _read_put_input(from_file, field_names)
    client, store = _client(), _store()
    plan = plan_put(client, name, given, merge=merge)
    if plan.unchanged:
        click.echo(_unchanged(plan))
        return
    for note in _put_notes(client, plan, given):
        click.echo(f"note: {note}", err=True)
    state = f"replacing version {plan.old_version}" if plan.current is not None else "a new secret"
    if plan.kv_version == 1 and plan.current is not None:
        state = "replacing the current data"
    _confirm(f"Write {', '.join(plan.fields)} to {plan.path} ({state})?", yes)
    with _plaintext_notice(store):
        result = apply_write(client, plan, store)
    click.echo(f"wrote {_describe(result)}")
    if plan.postgres_login and "password" in result.fields:
        click.echo(
            "note: only Vault changed; the PostgreSQL role keeps its password."
            f" `flask vault rotate --secret {name}` changes both.",
            err=True,
        )


def _unchanged(plan: WritePlan, what: str = "this data") -> str:
    version = f"version {plan.old_version}" if plan.old_version is not None else "it"
    return f"unchanged {plan.path}: {version} already holds {what}; nothing was written"


def _put_notes(client: VaultClient, plan: WritePlan, given: dict[str, Any]) -> list[str]:
    """A new secret or field whose name is close to one that exists: probably a typo, said before the write."""
    if plan.current is None:
        known = client.known_names()
        guess = closest(plan.name, known) if plan.name not in known else None
        if guess is None:
            return []
        return [
            f"{plan.path} does not exist yet and VAULT_SECRETS does not map {safe_repr(plan.name)}; did you mean"
            f" {safe_repr(guess)}? (this would create a new secret)"
        ]
    notes = []
    others = [field_name for field_name in plan.current.data if field_name not in given]
    for field_name in given:
        if field_name not in plan.current.data and (guess := closest(field_name, others)) is not None:
            notes.append(
                f"{plan.path} has no field {safe_repr(field_name)} yet; did you mean {safe_repr(guess)}?"
                " (this would add a new field)"
            )
    return notes


def _refuse_extra_arguments() -> None:
    """A value typed after NAME (``put flask secret_key=...``) is refused without being shown."""
    extra = click.get_current_context().args
    if extra:
        raise click.UsageError(
            f"`put` takes one NAME; {len(extra)} more argument(s) were given (not shown: they may hold a value)."
            " Values never come from arguments, which shell history and `ps` keep: use the hidden prompt,"
            " --from-file FILE or stdin. Nothing was written."
        )


def _ordinal(number: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(number, f"{number}th")


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
            try:
                check_field_name(field_name, argument="field")
            except VaultError as exc:
                click.echo(exc.message, err=True)
                continue
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
        click.echo(safe_text(name))
    if not names:
        click.echo(f"no secrets under {_folder(client)}/ (built from {_path_settings(client)})", err=True)


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
        f"{client.full_path(name)}: current version {safe_text(current)}, keeps {safe_text(kept)} versions,"
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
    if rotate_all and name:
        raise click.UsageError("Give --all or --secret NAME, not both.")
    if not rotate_all and not name:
        raise click.UsageError("Give --all or --secret NAME.")
    if field_names and not name:
        raise click.UsageError("--field needs --secret NAME.")
    if not dry_run:
        _require_yes_or_terminal(yes)
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
    with _plaintext_notice(store):
        result = apply_write(client, plan, store)
    click.echo(f"rotated {_describe(result)}")


def _rotate_all(client: VaultClient, store: BackupStore, rules: RotationRules, dry_run: bool, yes: bool) -> None:
    present = set(client.list_secrets())
    targets = [n for n in rules.names() if n in present]
    skipped = [[n, "-", "-", "skipped: no rotation settings", ""] for n in sorted(present - set(rules.names()))]
    skipped += [[n, "-", "-", "skipped: not in Vault", ""] for n in rules.names() if n not in present]
    if not dry_run and targets:
        _confirm(f"Rotate {', '.join(targets)} in {_folder(client)}/?", yes)
    with _plaintext_notice(store):
        rows, errors = _rotate_each(client, store, rules, targets, dry_run)
    click.echo(_table(["SECRET", "FIELDS", "VERSION", "RESULT", "BACKUP"], rows + skipped))
    for number, message in enumerate(errors, start=1):
        click.echo(f"({number}) {safe_text(' '.join(message.split()), _MESSAGE_LIMIT)}")
    if not dry_run and any(row[3].startswith("rotated") for row in rows):
        click.echo(f"backups in {store.directory}")
    if errors:
        raise CommandError(f"{len(errors)} of {len(targets)} rotation(s) failed; see above.")


def _rotate_each(
    client: VaultClient, store: BackupStore, rules: RotationRules, targets: list[str], dry_run: bool
) -> tuple[list[list[str]], list[str]]:
    """Rotate (or plan) each of ``targets``: a table row each, and the failures' messages."""
    rows: list[list[str]] = []
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
    return rows, errors


@vault_command("rollback")
@click.argument("name")
@click.option("--version", type=click.IntRange(min=1), required=True, help="The version whose data to bring back.")
@yes_option
def rollback_command(name: str, version: int, yes: bool) -> None:
    """Write version N's data as a new version (history is kept)."""
    _require_yes_or_terminal(yes)
    client, store = _client(), _store()
    plan = plan_rollback(client, name, version)
    if plan.unchanged:
        click.echo(_unchanged(plan, f"the data of version {version}"))
        return
    _confirm(f"Write version {version}'s data to {plan.path} as a new version (current: {plan.old_version})?", yes)
    with _plaintext_notice(store):
        result = apply_write(client, plan, store)
    click.echo(f"rolled back to version {version}: {_describe(result)}")


@vault_command("backup")
@click.argument("name", required=False)
@click.option("--all", "backup_all", is_flag=True, help="Every secret under <prefix>/<environment>/.")
@click.option("--out", "out", type=_NoNulPath(file_okay=False), help="Directory (default: VAULT_BACKUP_DIR).")
def backup_command(name: str | None, backup_all: bool, out: str | None) -> None:
    """Write backup files of the current version of one or every secret."""
    if backup_all == bool(name):
        raise click.UsageError("Give a secret NAME or --all.")
    client, store = _client(), _store(out)
    names = client.list_secrets() if backup_all else [check_secret_name(name)]
    with _plaintext_notice(store):
        for secret in _progress(names, "backing up"):
            entry = client.read_version(secret)
            file = store.save(secret, entry, reason="backup")
            click.echo(f"backed up {entry.path} version {_version_text(entry.version)} -> {file}")
    if not names:
        click.echo(f"no secrets to back up under {_folder(client)}/ (built from {_path_settings(client)})", err=True)


@vault_command("backups")
@click.argument("name", required=False)
@click.option("--dir", "directory", type=_NoNulPath(file_okay=False), help="Directory (default: VAULT_BACKUP_DIR).")
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
@click.argument("file", type=_NoNulPath(dir_okay=False))
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Accept a plaintext file although this app encrypts its backups (VAULT_BACKUP_TRANSIT_KEY).",
)
@yes_option
def restore_command(file: str, allow_plaintext: bool, yes: bool) -> None:
    """Verify a backup file and write its data as the secret's new version.

    The file is checked before anything is sent to Vault: it must be this app's (mount,
    prefix, environment), intact, and sealed with this app's Transit key when it has one.
    """
    _require_yes_or_terminal(yes)
    client, store = _client(), _store()
    checked = check_backup(file, client, store=store, allow_plaintext=allow_plaintext)
    info = checked.info
    sealed = f"encrypted with Transit key {checked.transit[1]!r}" if checked.transit else "a plaintext file"
    _confirm(
        f"Restore {info.path} to the data of version {_version_text(info.version)} backed up"
        f" {safe_text(info.backed_up_at)} (reason {safe_repr(info.reason)}, {sealed})?",
        yes,
    )
    plan = plan_restore(client, open_backup(client, checked))
    if plan.unchanged:
        click.echo(_unchanged(plan, f"the data of backed-up version {_version_text(info.version)}"))
        return
    with _plaintext_notice(store):
        result = apply_write(client, plan, store)
    click.echo(f"restored version {_version_text(info.version)} from {safe_text(file)}: {_describe(result)}")


@vault_command("policy", load=OFFLINE)
@click.argument("kind", type=click.Choice(sorted(TEMPLATES)))
@click.option(
    "--kv-version",
    type=click.Choice([str(v) for v in KV_VERSIONS]),
    default="2",
    show_default=True,
    help="The KV version of VAULT_MOUNT_POINT (`bao secrets list -detailed` shows it as version:1 or 2).",
)
def policy_command(kind: str, kv_version: str) -> None:
    """Print the least-privilege app, rotator or database policy for this app's paths (HCL).

    Sends no request: it needs no token and no server, only the app's settings
    (VAULT_MOUNT_POINT, VAULT_PATH_PREFIX, VAULT_ENVIRONMENT, VAULT_TRANSIT_MOUNT and
    VAULT_BACKUP_TRANSIT_KEY; for database, VAULT_DATABASE_MOUNT and VAULT_DATABASE_ROLE,
    what the app's token needs besides app). Vault cannot be asked the mount's KV version
    without a token, so give --kv-version 1 for a KV v1 mount.
    """
    click.echo(_policy_text(_state(), kind, int(kv_version)), nl=False)


def _policy_text(state: VaultState, kind: str, kv_version: int) -> str:
    settings = state.settings
    return render_policy(
        kind,
        mount=settings.mount_point,
        prefix=settings.path_prefix,
        environment=settings.environment,
        transit_mount=settings.transit_mount,
        transit_key=settings.backup_transit_key,
        kv_version=kv_version,
        database_mount=settings.database_mount,
        database_role=settings.database_role,
    )


# -- first run: init ---------------------------------------------------------------------


@vault_command("init")
@click.option(
    "--from-file",
    "from_file",
    type=click.File("r", encoding="utf-8"),
    help='Values to use, as JSON: {"database": {"host": "...", "password": "..."}} ("-": stdin).',
)
@click.option("--dry-run", is_flag=True, help="Show what would be created; change nothing.")
@yes_option
def init_command(from_file: TextIO | None, dry_run: bool, yes: bool) -> None:
    """Create the secrets VAULT_SECRETS maps that do not exist yet; never overwrite one.

    Fields the rotation rules can generate (flask's secret_key and jwt_secret) get strong
    new values; the others (a database's host, port, username, password and database) come
    from --from-file or a prompt. Each secret is written with check-and-set (absent ->
    version 1), so running it again changes nothing. Ends with the policies to apply and
    the next command to run.
    """
    if not dry_run:
        _require_yes_or_terminal(yes)
    state = _state()
    client = state.client
    given = _read_init_file(from_file) if from_file is not None else {}
    plan = plan_init(client, keys_by_name(state.settings.secrets), state.settings.rotation)
    check_given(plan, given, source="--from-file")
    for item in plan.items:
        if item.exists:
            click.echo(_describe_existing(item))
        elif dry_run:
            click.echo(f"would create {item.path}: {_describe_sources(item, given.get(item.name, {}))}")
    if dry_run:
        click.echo("dry run: nothing was written")
        return
    if plan.to_create:
        values = _init_values(plan, given)
        names = ", ".join(item.name for item in plan.to_create)
        _confirm(f"Create {names} in {_folder(client)}/?", yes)
        for result in apply_init(client, plan, values, _store()):
            version = f": version {result.new_version}" if result.new_version is not None else ""
            click.echo(f"created {result.path} ({', '.join(result.fields)}){version}")
    else:
        click.echo(f"nothing to create: every secret VAULT_SECRETS maps exists in {_folder(client)}/")
    _print_next_steps(state, client.kv_version())
    if plan.incomplete:
        raise CommandError(
            f"{len(plan.incomplete)} secret(s) exist but lack fields the app maps (see above); init never changes"
            " an existing secret."
        )


def _read_init_file(from_file: TextIO) -> dict[str, dict[str, Any]]:
    data = _parse_fields(from_file.read(), "--from-file", json_only=True)
    for name, fields in data.items():
        if not isinstance(fields, dict) or not fields:
            raise CommandError(
                f'--from-file: {name!r} must be a JSON object of fields, e.g. {{"{name}": {{"password": "..."}}}}.'
            )
    return data


def _folder(client: VaultClient) -> str:
    return "/".join(p for p in (client.mount_point, client.path_prefix, client.environment) if p)


def _path_settings(client: VaultClient) -> str:
    return path_settings(client.mount_point, client.path_prefix, client.environment)


def _describe_existing(item: InitItem) -> str:
    version = f" (version {item.version})" if item.version is not None else ""
    if not item.lacking:
        return f"exists {item.path}{version}: left alone"
    fields = " ".join(f"--field {f}" for f in item.lacking)
    return (
        f"exists {item.path}{version} but lacks {', '.join(item.lacking)}: left alone;"
        f" `flask vault put {item.name} {fields} --merge` adds {'them' if len(item.lacking) > 1 else 'it'}"
    )


def _describe_sources(item: InitItem, given: dict[str, Any]) -> str:
    generated = [rule.field for rule in item.generate if rule.field not in given]
    from_file = list(given)
    asked = [f for f in item.ask if f not in given]
    parts = [
        f"{', '.join(fields)} ({how})"
        for fields, how in ((generated, "generated"), (from_file, "from --from-file"), (asked, "asked"))
        if fields
    ]
    return "; ".join(parts)


def _init_values(plan: InitPlan, given: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The given values, completed by prompts on a terminal; checked before anything is written."""
    values = {item.name: dict(given.get(item.name, {})) for item in plan.to_create}
    interactive = _interactive()
    for item in plan.to_create:
        url_given = item.database and bool(values[item.name].get("url"))
        for field_name in item.ask:
            if field_name not in values[item.name] and interactive and not url_given:
                value = _prompt_field(item, field_name)
                if value:
                    values[item.name][field_name] = value
        example = ", ".join(f'"{f}": "..."' for f in item.required)
        source = f'--from-file FILE holding {{"{item.name}": {{{example}}}}}'
        if interactive:
            source += " or at the prompts"
        try:
            check_complete(item, values[item.name], source=source)
        except VaultError as exc:
            raise CommandError(exc.message) from None
    return values


def _prompt_field(item: InitItem, field_name: str) -> str:
    """A field's value: shown as typed for a connection field (host, port, ...), else hidden and asked twice."""
    optional = item.database and field_name in OPTIONAL_DATABASE_FIELDS
    label = f"{item.name}#{field_name}" + (" (empty: none)" if optional else "")
    hidden = field_name.lower() not in PROTECTED_FIELDS
    value: str = click.prompt(
        label,
        default="" if optional else None,
        show_default=False,
        hide_input=hidden,
        confirmation_prompt=hidden,
    )
    return value.strip() if not hidden else value


def _print_next_steps(state: VaultState, kv_version: int) -> None:
    settings = state.settings
    flask = _flask_command()
    version = " --kv-version 1" if kv_version == 1 else ""
    name = "-".join(p for p in (settings.path_prefix, settings.environment) if p)
    click.echo()
    click.echo(f"Least-privilege policies for these secrets (KV v{kv_version}); apply them once with an admin token:")
    kinds = ("app", "rotator", "database") if settings.database_role else ("app", "rotator")
    for kind in kinds:
        click.echo(f"  {flask} vault policy {kind}{version} | bao policy write {name}-{kind} -")
    for kind in kinds:
        click.echo()
        click.echo(_policy_text(state, kind, kv_version), nl=False)
    click.echo()
    click.echo(f"Next: `{flask} vault status` (it exits 0 when the app can start), then start the app.")


def _flask_command() -> str:
    info = click.get_current_context().find_object(ScriptInfo)
    path = info.app_import_path if info is not None else None
    return f"flask --app {path}" if path else "flask"
