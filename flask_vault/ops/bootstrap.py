"""``flask vault init``: create the secrets an app maps that do not exist yet, and nothing else.

:func:`plan_init` reads each secret that ``VAULT_SECRETS`` names (straight from Vault) and
decides, per secret, what creating it takes:

* fields that the rotation rules can generate (``flask``'s ``secret_key`` and
  ``jwt_secret`` by default, and any field ``VAULT_ROTATION`` names) get strong generated
  values, made only when the plan is applied;
* every other field is *asked*: a database secret (a bare reference such as
  ``SQLALCHEMY_DATABASE_URI: "database"``) asks for ``host``, ``port``, ``username``,
  ``password`` and ``database``, and a password is always asked, never generated (it must
  match whatever it logs in to).

A secret that already exists is left alone, even when it lacks a field the app maps (the
plan says which, so the command can tell). :func:`apply_init` writes each new secret
through the one write path (:func:`flask_vault.ops.write.plan_put` with check-and-set
``cas=0`` on KV v2, then :func:`~flask_vault.ops.write.apply_write`), so a secret created
by someone else in the meantime is never overwritten; running it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask_vault.database import REQUIRED_FIELDS, build_database_url
from flask_vault.errors import VaultConfigError, VaultError
from flask_vault.ops.write import ChangeResult, apply_write, plan_put, read_current
from flask_vault.rotation_rules import FieldRule, RotationRules

if TYPE_CHECKING:
    from flask_vault.client import VaultClient
    from flask_vault.ops.backup import BackupStore

#: The fields asked for a database secret (the URL is built from them; see flask_vault.database).
DATABASE_FIELDS = ("host", "port", "username", "password", "database")
#: Database fields that may be left empty (no port: the driver's default; no password: none).
OPTIONAL_DATABASE_FIELDS = frozenset({"port", "password"})
#: Fields never generated, whatever the rotation rules say: they must match something outside Vault.
NEVER_GENERATED = frozenset({"password"})


@dataclass(frozen=True)
class InitItem:
    """One secret that ``VAULT_SECRETS`` maps, and what ``init`` does with it. No value in its repr."""

    name: str
    #: Its path as Vault's CLI shows it, e.g. ``secret/store-erp/production/flask``.
    path: str
    #: The version that exists now (None: the secret does not exist, or the mount is KV v1).
    version: int | None
    exists: bool
    #: The config keys that read it.
    keys: tuple[str, ...]
    #: A database login (some key reads the whole secret as a URL).
    database: bool = False
    #: Fields generated when the plan is applied.
    generate: tuple[FieldRule, ...] = ()
    #: Fields whose values must be given (a prompt or ``--from-file``).
    ask: tuple[str, ...] = ()
    #: For a secret that exists: the fields the app maps that it lacks (init leaves it alone).
    lacking: tuple[str, ...] = field(default=())

    @property
    def required(self) -> tuple[str, ...]:
        """The asked fields that must have a value."""
        if not self.database:
            return self.ask
        return tuple(f for f in self.ask if f not in OPTIONAL_DATABASE_FIELDS)


@dataclass(frozen=True)
class InitPlan:
    """Every mapped secret, in ``VAULT_SECRETS`` order; built by :func:`plan_init`."""

    items: tuple[InitItem, ...]

    @property
    def to_create(self) -> tuple[InitItem, ...]:
        return tuple(item for item in self.items if not item.exists)

    @property
    def incomplete(self) -> tuple[InitItem, ...]:
        """Secrets that exist but lack a field the app maps."""
        return tuple(item for item in self.items if item.exists and item.lacking)


def plan_init(
    client: VaultClient, secrets: Mapping[str, Sequence[tuple[str, str | None]]], rules: RotationRules
) -> InitPlan:
    """Read every secret the app maps and decide what creating it takes.

    ``secrets``: secret name -> its ``(config key, field or None)`` references, in
    ``VAULT_SECRETS`` order (:func:`flask_vault.mapping.keys_by_name` gives them).

    Nothing is written and no value is made. A token that may not read a secret is refused
    here, naming the ``read`` capability and the API path its policy needs.
    """
    items = []
    for name, refs in secrets.items():
        keys = tuple(key for key, _ in refs)
        database = any(field_name is None for _, field_name in refs)
        named = [field_name for _, field_name in refs if field_name is not None]
        wanted = _unique([*DATABASE_FIELDS, *named] if database else named)
        current = read_current(client, name, missing_ok=True, action="init")
        if current is not None:
            items.append(
                InitItem(
                    name,
                    current.path,
                    current.version,
                    True,
                    keys,
                    database,
                    lacking=_lacking(current.data, named, database, current.path),
                )
            )
            continue
        generate = tuple(rule for f in wanted if (rule := _generated(rules, name, f, database)) is not None)
        generated = {rule.field for rule in generate}
        ask = tuple(f for f in wanted if f not in generated)
        items.append(InitItem(name, client.full_path(name), None, False, keys, database, generate, ask))
    return InitPlan(tuple(items))


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _generated(rules: RotationRules, name: str, field_name: str, database: bool) -> FieldRule | None:
    """The rule that makes this field's value, when init may generate it."""
    if database or field_name in NEVER_GENERATED:
        return None
    for rule in rules.fields_for(name):
        if rule.field == field_name and rule.postgres is not True:
            return rule
    return None


def _lacking(data: Mapping[str, Any], named: list[str], database: bool, path: str) -> tuple[str, ...]:
    lacking = [f for f in named if f not in data]
    if database:
        try:
            build_database_url(data, path=path)
        except VaultError:
            lacking += [f for f in REQUIRED_FIELDS if not data.get(f) and f not in lacking]
    return tuple(lacking)


def check_given(plan: InitPlan, given: Mapping[str, Mapping[str, Any]], *, source: str) -> None:
    """Refuse values for a secret the app does not map, or a database secret that would not make a URL.

    ``source`` names where the values came from (``--from-file``) in the message.
    """
    names = [item.name for item in plan.items]
    for name, fields in given.items():
        if name not in names:
            raise VaultConfigError(
                f"{source}: {name!r} is not a secret VAULT_SECRETS maps (it maps: {', '.join(names)}).", key=source
            )
        if not isinstance(fields, Mapping) or not all(isinstance(f, str) and f for f in fields):
            raise VaultConfigError(f"{source}: {name!r} must map field names to values.", key=source)
        if any(value is None or value == "" for value in fields.values()):
            raise VaultConfigError(f"{source}: every field of {name!r} needs a non-empty value.", key=source)


def check_complete(item: InitItem, data: Mapping[str, Any], *, source: str) -> None:
    """Refuse data that lacks a required field, or a database secret that would not make a URL.

    A database secret may be one ``url`` field instead of its parts (it is used as it is).
    """
    url_only = item.database and bool(data.get("url"))
    absent = [] if url_only else [f for f in item.required if f not in data]
    if absent:
        raise VaultConfigError(
            f"{item.path} needs {', '.join(absent)}: give {'them' if len(absent) > 1 else 'it'} in {source}."
            " Nothing was written.",
            key=source,
        )
    if item.database:
        try:
            build_database_url(data, path=item.path)
        except VaultError as exc:
            raise VaultConfigError(f"{source}: {exc.message} Nothing was written.", key=source) from None


def apply_init(
    client: VaultClient,
    plan: InitPlan,
    given: Mapping[str, Mapping[str, Any]],
    store: BackupStore | None = None,
) -> list[ChangeResult]:
    """Create every secret of ``plan.to_create``: ``given`` fields plus generated ones, check-and-set.

    Every secret's data is checked before the first write. A secret that someone created
    since the plan was made is not overwritten: its write fails with
    :class:`~flask_vault.errors.VaultConflictError` (KV v2).
    """
    datas = {}
    for item in plan.to_create:
        data = dict(given.get(item.name, {}))
        check_complete(item, data, source="the values given")
        datas[item.name] = data
    results = []
    for item in plan.to_create:
        data = datas[item.name]
        for rule in item.generate:
            if rule.field not in data:
                data[rule.field] = rule.generate()
        cas = 0 if client.kv_version() == 2 else None
        results.append(apply_write(client, plan_put(client, item.name, data, cas=cas), store))
    return results
