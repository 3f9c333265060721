"""Rotate secret fields to strong new values, and roll a secret back to an old version.

Which fields of which secret rotate, and how their new values are made, comes from
``VAULT_ROTATION`` (a mapping in ``app.config``, or JSON in the environment)::

    VAULT_ROTATION = {
        "flask": ["secret_key", "jwt_secret"],            # defaults: 64 URL-safe characters
        "database": {"password": {"length": 40, "alphabet": "alphanumeric"}},
        "payments": {"webhook_secret": {"generator": "myapp.keys:new_webhook_secret"}},
    }

Each secret maps to a list of field names or to ``{field: options}``. Options:

``length``
    number of characters (default 64).
``alphabet``
    the characters to draw from: ``urlsafe`` (default, ``A-Z a-z 0-9 - _``),
    ``alphanumeric``, ``hex``, ``printable``, or a literal string of distinct characters.
    ``length`` and ``alphabet`` together must give at least 128 bits of entropy.
``generator``
    a callable, or the dotted path of one (``pkg.module:function`` or
    ``pkg.module.function``), returning the new value as a string. It is called with
    ``(secret_name, field_name)`` when it accepts two arguments, else with none.
``postgres``
    ``true``: the field is a PostgreSQL password to change with ``ALTER ROLE`` too;
    ``false``: never; absent: when the secret looks like a PostgreSQL login.

Built-in defaults, used unless ``VAULT_ROTATION`` names the secret: ``flask`` rotates
``secret_key`` and ``jwt_secret``, ``database`` rotates ``password``. A secret mapped to
``[]`` or ``None`` is never rotated. Connection fields (host, port, user and database
names, driver, URL) are never rotated.
"""

from __future__ import annotations

import importlib
import inspect
import math
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Any

from flask_vault.errors import SecretNotFoundError, VaultConfigError
from flask_vault.ops.changes import ChangeResult, apply_change, read_current, require_kv2

if TYPE_CHECKING:
    from flask_vault.cache import CachedSecret
    from flask_vault.client import VaultClient
    from flask_vault.ops.backup import BackupStore

ALPHABETS: dict[str, str] = {
    "urlsafe": string.ascii_letters + string.digits + "-_",
    "alphanumeric": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "printable": string.ascii_letters + string.digits + string.punctuation,
}
DEFAULT_LENGTH = 64
MAX_LENGTH = 4096
MIN_ENTROPY_BITS = 128

#: Secret name -> fields rotated when VAULT_ROTATION does not mention the secret.
DEFAULT_ROTATION: dict[str, tuple[str, ...]] = {
    "flask": ("secret_key", "jwt_secret"),
    "database": ("password",),
}

#: Fields that locate a service rather than authenticate to it: never rotated.
PROTECTED_FIELDS = frozenset(
    {
        "host",
        "hostname",
        "port",
        "user",
        "username",
        "user_name",
        "login",
        "database",
        "dbname",
        "db",
        "driver",
        "url",
        "uri",
        "dsn",
        "sslmode",
    }
)

_OPTIONS = ("length", "alphabet", "generator", "postgres")
_KEY = "VAULT_ROTATION"


@dataclass(frozen=True)
class FieldRule:
    """How one field of one secret gets its new value."""

    secret: str
    field: str
    length: int = DEFAULT_LENGTH
    alphabet: str = ALPHABETS["urlsafe"]
    generator: Callable[..., Any] | None = dataclass_field(default=None, compare=False)
    #: None: pair with PostgreSQL when the secret looks like a PostgreSQL login.
    postgres: bool | None = None

    def generate(self) -> str:
        """A new value for the field (never logged or shown)."""
        if self.generator is None:
            return "".join(secrets.choice(self.alphabet) for _ in range(self.length))
        value = _call_generator(self.generator, self.secret, self.field)
        if not isinstance(value, str) or not value:
            raise VaultConfigError(
                f"{_KEY}[{self.secret!r}][{self.field!r}]: the generator {_callable_name(self.generator)} returned"
                f" {type(value).__name__}, expected a non-empty string.",
                key=_KEY,
            )
        return value


@dataclass(frozen=True)
class RotationRules:
    """Parsed ``VAULT_ROTATION`` merged over :data:`DEFAULT_ROTATION`."""

    secrets: dict[str, tuple[FieldRule, ...]]
    #: Secrets named in VAULT_ROTATION (the rest come from DEFAULT_ROTATION).
    configured: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, raw: Mapping[str, Any] | None) -> RotationRules:
        """Validate ``raw`` (``settings.rotation``); a bad entry raises VaultConfigError."""
        parsed: dict[str, tuple[FieldRule, ...]] = {
            name: tuple(FieldRule(name, f) for f in fields) for name, fields in DEFAULT_ROTATION.items()
        }
        for name, spec in (raw or {}).items():
            if not isinstance(name, str) or not name:
                raise VaultConfigError(f"{_KEY} keys must be secret names, got {name!r}.", key=_KEY)
            parsed[name] = _parse_secret(name, spec)
        return cls(parsed, frozenset(raw or {}))

    def names(self) -> list[str]:
        """Secrets with at least one field to rotate."""
        return sorted(name for name, rules in self.secrets.items() if rules)

    def fields_for(self, name: str) -> tuple[FieldRule, ...]:
        return self.secrets.get(name, ())

    def rule(self, name: str, field_name: str) -> FieldRule:
        """The rule for one field; a field without settings gets the defaults."""
        _check_not_protected(name, field_name, source="--field")
        for rule in self.fields_for(name):
            if rule.field == field_name:
                return rule
        return FieldRule(name, field_name)


@dataclass(frozen=True)
class RotationPlan:
    """What a rotation of one secret will do (``--dry-run`` prints this)."""

    name: str
    path: str
    current: CachedSecret = dataclass_field(repr=False)
    rules: tuple[FieldRule, ...]
    #: ``role 'x' on host:port/db`` when the password change goes to PostgreSQL too.
    database: str | None

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(rule.field for rule in self.rules)

    @property
    def version(self) -> int | None:
        return self.current.version


def plan_rotation(
    client: VaultClient, name: str, rules: RotationRules, fields: tuple[str, ...] | list[str] | None = None
) -> RotationPlan:
    """Read the secret and decide which fields rotate; nothing is written."""
    require_kv2(client, "rotate")
    current = read_current(client, name)
    assert current is not None
    if fields:
        chosen = tuple(rules.rule(name, f) for f in dict.fromkeys(fields))
    else:
        chosen = rules.fields_for(name)
        if not chosen:
            raise not_configured_error(client, name, current)
    if not fields and name not in rules.configured:
        # Built-in defaults adapt to the secret (an app without JWT has no jwt_secret).
        chosen = tuple(rule for rule in chosen if rule.field in current.data) or chosen
    missing = [rule.field for rule in chosen if rule.field not in current.data]
    if missing:
        present = ", ".join(sorted(current.data)) or "none"
        raise SecretNotFoundError(
            f"{current.path} has no field {', '.join(map(repr, missing))} to rotate; fields present: {present}."
            f" Fix {_KEY} or the --field option.",
            url=client.url,
            mount=client.mount_point,
            path=current.path,
        )
    database = None
    if any(rule.field == "password" for rule in chosen):
        from flask_vault.ops import pgrole

        postgres = next(rule.postgres for rule in chosen if rule.field == "password")
        if postgres is not False and pgrole.is_postgres_secret(current.data):
            database = pgrole.describe(current.data)
        elif postgres:
            raise VaultConfigError(
                f"{_KEY}[{name!r}]['password'] sets postgres=true but {current.path} is not a PostgreSQL login"
                " (it needs 'username' and 'host', no 'url', and a postgresql driver).",
                key=_KEY,
            )
    return RotationPlan(name, current.path, current, chosen, database)


def rotate(
    client: VaultClient,
    name: str,
    rules: RotationRules,
    store: BackupStore,
    fields: tuple[str, ...] | list[str] | None = None,
) -> ChangeResult:
    """Rotate the secret's configured fields (or ``fields``): backup, check-and-set, paired DB password."""
    plan = plan_rotation(client, name, rules, fields)
    return apply_plan(client, plan, store)


def apply_plan(client: VaultClient, plan: RotationPlan, store: BackupStore) -> ChangeResult:
    """Carry out a :class:`RotationPlan` against the version it read."""
    data = dict(plan.current.data)
    for rule in plan.rules:
        value = rule.generate()
        if value == plan.current.data.get(rule.field):
            raise VaultConfigError(
                f"The new value for {plan.path}#{rule.field} equals the current one; check the generator in {_KEY}."
                " Nothing was changed.",
                key=_KEY,
            )
        data[rule.field] = value
    postgres = next((rule.postgres for rule in plan.rules if rule.field == "password"), None)
    return apply_change(client, plan.name, plan.current, data, action="rotate", store=store, database=postgres)


def rollback(client: VaultClient, name: str, version: int, store: BackupStore) -> ChangeResult:
    """Write version ``version``'s data as the secret's new version (history stays intact)."""
    require_kv2(client, "rollback")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise VaultConfigError(f"--version must be a version number >= 1, got {version!r}.", key="version")
    current = read_current(client, name)
    assert current is not None
    if current.version is not None and version > current.version:
        raise SecretNotFoundError(
            f"{current.path} has no version {version}: the current version is {current.version}.",
            url=client.url,
            mount=client.mount_point,
            path=current.path,
        )
    try:
        target = client.read_version(name, version)
    except SecretNotFoundError as exc:
        raise SecretNotFoundError(
            f"Version {version} of {current.path} is deleted, destroyed or no longer kept (KV keeps the last"
            f" max_versions versions); `flask vault versions {name}` lists what is left, `flask vault backups`"
            " the backup files.",
            url=exc.url,
            mount=exc.mount,
            path=exc.path,
            status=exc.status,
        ) from exc
    if not target.data:
        raise SecretNotFoundError(f"Version {version} of {current.path} holds no data; nothing to roll back to.")
    return apply_change(client, name, current, target.data, action="rollback", store=store)


def not_configured_error(client: VaultClient, name: str, current: CachedSecret | None = None) -> VaultConfigError:
    """The refusal for a secret with no rotation settings, showing how to add them."""
    candidates = [f for f in sorted(current.data) if f not in PROTECTED_FIELDS] if current is not None else []
    example_field = candidates[0] if candidates else "api_key"
    present = f" (fields: {', '.join(candidates)})" if candidates else ""
    return VaultConfigError(
        f"No rotation settings for {name!r}{present}, so nothing was rotated. Add them to the app config, e.g."
        f' {_KEY} = {{"{name}": {{"{example_field}": {{"length": 64}}}}}}, or name the field:'
        f" flask vault rotate --secret {name} --field {example_field}",
        key=_KEY,
    )


# -- parsing ---------------------------------------------------------------------------


def _parse_secret(name: str, spec: Any) -> tuple[FieldRule, ...]:
    if spec is None or spec is False:
        return ()
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, (list, tuple)):
        spec = {field_name: {} for field_name in spec}
    if not isinstance(spec, Mapping):
        raise VaultConfigError(
            f"{_KEY}[{name!r}] must be a list of field names or a mapping of field names to options,"
            f" got {type(spec).__name__}.",
            key=_KEY,
        )
    return tuple(_parse_field(name, field_name, options) for field_name, options in spec.items())


def _parse_field(name: str, field_name: Any, options: Any) -> FieldRule:
    where = f"{_KEY}[{name!r}][{field_name!r}]"
    if not isinstance(field_name, str) or not field_name:
        raise VaultConfigError(f"{_KEY}[{name!r}]: field names must be non-empty strings.", key=_KEY)
    _check_not_protected(name, field_name, source=_KEY)
    if options is None or options is True:
        options = {}
    if not isinstance(options, Mapping):
        raise VaultConfigError(f"{where} must be a mapping of options ({', '.join(_OPTIONS)}).", key=_KEY)
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise VaultConfigError(
            f"{where} has unknown option(s) {', '.join(map(repr, unknown))}; expected {', '.join(_OPTIONS)}.",
            key=_KEY,
        )
    length = options.get("length", DEFAULT_LENGTH)
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_LENGTH:
        raise VaultConfigError(f"{where}['length'] must be a whole number 1-{MAX_LENGTH}, got {length!r}.", key=_KEY)
    alphabet = _parse_alphabet(where, options.get("alphabet", "urlsafe"))
    generator = _resolve_generator(where, options["generator"]) if options.get("generator") is not None else None
    if generator is None and length * math.log2(len(alphabet)) < MIN_ENTROPY_BITS:
        needed = math.ceil(MIN_ENTROPY_BITS / math.log2(len(alphabet)))
        raise VaultConfigError(
            f"{where}: {length} characters from a {len(alphabet)}-character alphabet is weaker than"
            f" {MIN_ENTROPY_BITS} bits; use a length of at least {needed}.",
            key=_KEY,
        )
    postgres = options.get("postgres")
    if postgres == "auto":
        postgres = None
    if postgres is not None and not isinstance(postgres, bool):
        raise VaultConfigError(f"{where}['postgres'] must be true, false or absent, got {postgres!r}.", key=_KEY)
    return FieldRule(name, field_name, length, alphabet, generator, postgres)


def _parse_alphabet(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise VaultConfigError(f"{where}['alphabet'] must be a name ({', '.join(ALPHABETS)}) or a string.", key=_KEY)
    alphabet = ALPHABETS.get(value, value)
    if len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:
        raise VaultConfigError(
            f"{where}['alphabet'] must hold at least 2 distinct characters with no repeats"
            f" (or be one of {', '.join(ALPHABETS)}).",
            key=_KEY,
        )
    return alphabet


def _check_not_protected(name: str, field_name: str, *, source: str) -> None:
    if field_name.lower() in PROTECTED_FIELDS:
        raise VaultConfigError(
            f"{source}: {name}#{field_name} locates a service (host, port, user or database name, driver or URL);"
            " flask-vault never rotates it.",
            key=_KEY,
        )


def _resolve_generator(where: str, value: Any) -> Callable[..., Any]:
    if callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str) or not value.strip():
        raise VaultConfigError(f"{where}['generator'] must be a callable or a dotted path to one.", key=_KEY)
    dotted = value.strip()
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    if not module_name or not attr:
        raise VaultConfigError(
            f"{where}['generator'] {dotted!r} must look like 'package.module:function'.",
            key=_KEY,
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise VaultConfigError(
            f"{where}['generator'] {dotted!r} cannot be imported ({type(exc).__name__}: {exc}).", key=_KEY
        ) from exc
    if not callable(target):
        raise VaultConfigError(f"{where}['generator'] {dotted!r} is not callable.", key=_KEY)
    return target  # type: ignore[no-any-return]


def _call_generator(generator: Callable[..., Any], secret: str, field_name: str) -> Any:
    try:
        inspect.signature(generator).bind(secret, field_name)
    except TypeError:
        return generator()
    except ValueError:  # no signature (some builtins): try the documented two-argument form
        pass
    return generator(secret, field_name)


def _callable_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or type(func).__name__
    return f"{module}.{qualname}" if module else qualname
