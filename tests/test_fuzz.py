"""Fuzzing with hypothesis: bad input and odd answers end in a VaultError or a click usage error.

Secret names and fields, every setting, ``flask vault`` arguments, backup files and odd HTTP
answers (``requests_mock``). Whatever is drawn: a :class:`VaultError` subclass (or a click
usage error, exit 2), nothing sent to Vault or written for bad input, no traceback.

Bounded in the suite; ``FLASK_VAULT_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz.py`` runs a
longer search (the number of examples per property).
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests_mock as rm
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_vault import BackupError, VaultClient, VaultConfigError, VaultError, VaultSettings
from flask_vault.ops.backup import MAX_FILE_BYTES, check_backup
from flask_vault.paths import check_field_name, check_secret_name, is_valid_name
from flask_vault.settings import _SPECS, CREDENTIAL_KEYS
from flask_vault.state import get_state
from tests.rotation_support import backup_files, current, make_cli_app, seed_env, vault

EXAMPLES = int(os.environ.get("FLASK_VAULT_FUZZ_EXAMPLES", "40"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MOCK_URL = "http://127.0.0.1:1"  # never reached: requests_mock answers, or refuses with NoMockAddress

#: Text that tends to break things: separators, dots, controls, escapes, non-ASCII.
nasty_text = (
    st.text(alphabet=st.sampled_from([*string.printable, "\x00", "\x1b", "\u202e", "é"]), max_size=40)
    | st.lists(st.sampled_from(["flask", "..", ".", "", "a b", "x=y", "\x1b[2J", "é"]), max_size=4).map("/".join)
    | st.text(max_size=40)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | nasty_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4),
    max_leaves=12,
)


def mocked_client(**config: Any) -> VaultClient:
    settings_ = VaultSettings.load(
        {"VAULT_URL": MOCK_URL, "VAULT_TOKEN": "fuzz-token", "VAULT_MAX_RETRIES": 0, **config}, {}
    )
    return VaultClient(settings=settings_)


@pytest.fixture(scope="module")
def client() -> VaultClient:
    return mocked_client(VAULT_PATH_PREFIX="store-erp", VAULT_ENVIRONMENT="test")


# -- names and fields ----------------------------------------------------------------------------------


@fuzz
@given(name=nasty_text)
def test_a_secret_name_is_valid_or_refused_before_anything_is_sent(client: VaultClient, name: str) -> None:
    with rm.Mocker() as sent:
        sent.get(rm.ANY, json={"data": {"data": {"k": "v"}, "metadata": {"version": 1}}})
        try:
            client.get_secret(name, use_cache=False)
        except VaultConfigError:
            assert not is_valid_name(name)
            assert sent.request_history == []
            return
    assert check_secret_name(name) == name


@fuzz
@given(data=st.dictionaries(nasty_text, nasty_text, min_size=1, max_size=4))
def test_field_names_to_write_are_checked_before_anything_is_sent(client: VaultClient, data: dict[str, str]) -> None:
    bad = [f for f in data if not _field_ok(f)]
    with rm.Mocker() as sent:
        try:
            client.set_secret("fuzzed", data)
        except VaultConfigError as exc:
            assert bad, exc.message
            assert sent.request_history == []
            assert all(f not in exc.message for f in bad if len(f) > 3)  # a field name may be a value
            return
        except VaultError:  # a valid write reaches the (absent) server
            assert not bad
            return
    pytest.fail("set_secret neither wrote nor refused")


def _field_ok(name: str) -> bool:
    try:
        check_field_name(name)
    except VaultConfigError:
        return False
    return True


# -- every setting -------------------------------------------------------------------------------------


@fuzz
@given(key=st.sampled_from([spec.key for spec in _SPECS]), value=json_values)
def test_every_setting_takes_a_value_or_names_itself_in_a_config_error(key: str, value: Any) -> None:
    try:
        VaultSettings.load({key: value}, {})
    except VaultConfigError as exc:
        assert exc.key is not None
        if key in CREDENTIAL_KEYS and isinstance(value, str) and len(value) > 3:
            assert value not in exc.message
        assert "\x1b" not in exc.message and "\x00" not in exc.message


@fuzz
@given(config=st.dictionaries(st.sampled_from([spec.key for spec in _SPECS]), nasty_text, max_size=6))
def test_settings_together_load_or_raise_a_config_error(config: dict[str, str]) -> None:
    try:
        VaultSettings.load(config, {})
    except VaultConfigError:
        pass


# -- odd HTTP answers ----------------------------------------------------------------------------------

statuses = st.sampled_from([200, 204, 301, 302, 400, 401, 403, 404, 405, 409, 412, 429, 472, 473, 500, 501, 502, 503])
bodies = st.one_of(
    json_values.map(lambda v: {"json": v}),
    st.binary(max_size=64).map(lambda b: {"content": b}),
    st.just({"text": ""}),
)
headers = st.sampled_from([{}, {"Content-Type": "application/json"}, {"Content-Type": "text/html"}])


def answer(status: int, body: dict[str, Any], header: dict[str, str]) -> dict[str, Any]:
    location = {"Location": "https://elsewhere.example/v1/x"} if status in (301, 302) else {}
    return {"status_code": status, "headers": {**header, **location}, **body}


@fuzz
@given(status=statuses, body=bodies, header=headers, operation=st.sampled_from(["read", "list", "metadata", "write"]))
def test_an_odd_answer_is_a_vault_error_with_a_printable_message(
    client: VaultClient, status: int, body: dict[str, Any], header: dict[str, str], operation: str
) -> None:
    with rm.Mocker() as mock:
        mock.get(f"{MOCK_URL}/v1/sys/internal/ui/mounts/secret", json={"data": {"options": {"version": "2"}}})
        mock.register_uri(rm.ANY, rm.ANY, **answer(status, body, header))
        mock.get(f"{MOCK_URL}/v1/sys/internal/ui/mounts/secret", json={"data": {"options": {"version": "2"}}})
        try:
            if operation == "read":
                client.get_secret("flask", use_cache=False)
            elif operation == "list":
                client.list_secrets()
            elif operation == "metadata":
                client.read_metadata("flask")
            else:
                client.kv.write("flask", {"k": "v"}, cas=1)
        except VaultError as exc:
            assert exc.message.isprintable(), exc.message
    assert client.health_check()["url"] == MOCK_URL  # never raises either


# -- backup files --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backup_app(tmp_path_factory: pytest.TempPathFactory, openbao_server: Any) -> Iterator[tuple[Flask, Path]]:
    root = openbao_server.root_client()
    environment = "fuzz-backups"
    seed_env(root, environment)
    base = {
        "VAULT_URL": openbao_server.url,
        "VAULT_TOKEN": openbao_server.root_token,
        "VAULT_PATH_PREFIX": "store-erp",
        "VAULT_STARTUP_TIMEOUT": 0,
    }
    app = make_cli_app(base, environment, tmp_path_factory.mktemp("fuzz-backups"))
    assert vault(app, "backup", "flask").exit_code == 0
    [file] = backup_files(Path(app.instance_path) / "vault-backups")
    yield app, file


BACKUP_KEYS = (
    *("format", "format_version", "name", "mount", "prefix", "environment", "path", "version", "reason"),
    *("backed_up_at", "encryption", "data", "checksum", "ciphertext", "extra"),
)


def mutate(document: dict[str, Any], key: str, value: Any, recompute: bool) -> dict[str, Any]:
    from tests.test_backup_safety import recompute_checksum

    changed = {**document, key: value}
    if recompute:
        recompute_checksum(changed)
    return changed


@fuzz
@given(
    key=st.sampled_from(BACKUP_KEYS),
    value=json_values,
    recompute=st.booleans(),
    cut=st.none() | st.integers(min_value=0, max_value=2000),
)
def test_a_damaged_or_edited_backup_is_refused_without_asking_vault(
    backup_app: tuple[Flask, Path], tmp_path_factory: pytest.TempPathFactory, key: str, value: Any, recompute: bool,
    cut: int | None,
) -> None:  # fmt: skip
    app, original = backup_app
    document = mutate(json.loads(original.read_text()), key, value, recompute)
    text = json.dumps(document)
    file = tmp_path_factory.mktemp("fuzzed") / "backup.json"
    file.write_text(text[:cut] if cut is not None else text)
    with rm.Mocker() as sent:  # no real_http: checking a file must not ask Vault anything
        try:
            check_backup(file, get_state(app).client)
        except BackupError as exc:
            assert exc.message.isprintable()
        assert sent.request_history == []


def test_a_huge_backup_file_is_refused_unread(backup_app: tuple[Flask, Path], tmp_path: Path) -> None:
    app, _ = backup_app
    huge = tmp_path / "huge.json"
    with huge.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no 16 MB written
    with pytest.raises(BackupError, match="too big"):
        check_backup(huge, get_state(app).client)


@fuzz
@given(raw=st.binary(max_size=300))
def test_bytes_that_are_not_a_backup_fail_restore_in_one_line(
    backup_app: tuple[Flask, Path], tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    app, _ = backup_app
    file = tmp_path_factory.mktemp("raw") / "backup.json"
    file.write_bytes(raw)
    result = vault(app, "restore", str(file), "--yes")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


# -- flask vault arguments -----------------------------------------------------------------------------

commands = st.sampled_from(["get", "put", "list", "versions", "rotate", "rollback", "backups", "restore"])
arguments = st.lists(
    nasty_text | st.sampled_from(["--field", "--version", "--secret", "--all", "--merge", "--dry-run", "--"]),
    max_size=5,
)


@pytest.fixture(scope="module")
def cli_app(backup_app: tuple[Flask, Path]) -> Flask:
    return backup_app[0]


@fuzz
@given(command=commands, args=arguments)
def test_any_arguments_give_an_answer_or_a_usage_error_and_write_nothing(
    cli_app: Flask, openbao_server: Any, command: str, args: list[str]
) -> None:
    root: hvac.Client = openbao_server.root_client()
    before = current(root, "fuzz-backups", "flask")
    with rm.Mocker(real_http=True) as sent:
        result = vault(cli_app, command, *args, input="")
    assert result.exit_code in (0, 1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert sent.request_history == [], [r.path for r in sent.request_history]
    assert current(root, "fuzz-backups", "flask") == before
