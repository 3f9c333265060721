"""``VAULT_ROTATION``: which fields of which secret rotate, and how their new values are made.

Parsed and validated with every other setting (``VaultSettings.load``, so at
``init_app``): a bad entry raises :class:`~flask_vault.errors.VaultConfigError` naming
``VAULT_ROTATION`` before the app starts, not at the first rotation. The setting is a
mapping in ``app.config``, or JSON in the environment::

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
from typing import Any

from flask_vault.errors import VaultConfigError

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
        """Validate ``raw`` (the ``VAULT_ROTATION`` mapping); a bad entry raises VaultConfigError."""
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

    def rule(self, name: str, field_name: str, *, source: str = "--field") -> FieldRule:
        """The rule for one field; a field without settings gets the defaults.

        ``source`` names where the field was asked for, in the refusal of a connection field.
        """
        _check_not_protected(name, field_name, source=source)
        for rule in self.fields_for(name):
            if rule.field == field_name:
                return rule
        return FieldRule(name, field_name)


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
