"""Secret names and where they live: ``<mount>/<prefix>/<environment>/<name>``.

Names are checked before any request is sent, so a typo or a ``..`` never reaches
Vault. Users never write KV v2's ``data/`` or ``metadata/``: the client adds them.
"""

from __future__ import annotations

import re

from flask_vault.errors import VaultConfigError

_SEGMENT = re.compile(r"[A-Za-z0-9_.\-]+")
#: The rule every secret name, mount, prefix and environment follows, in words.
NAME_RULE = (
    "'/'-separated segments of ASCII letters, digits, '_', '.' and '-'"
    " (no empty, '.' or '..' segment, no leading or trailing '/')"
)


def _is_valid(value: str) -> bool:
    segments = value.split("/")
    return all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments)


def is_valid_name(value: object) -> bool:
    """True when ``value`` is a string that follows :data:`NAME_RULE` (a secret name, mount, prefix...)."""
    return isinstance(value, str) and _is_valid(value)


def check_secret_name(name: object, *, argument: str = "name") -> str:
    """Return ``name`` if it is a valid secret name, else raise VaultConfigError."""
    if not isinstance(name, str) or not _is_valid(name):
        raise VaultConfigError(
            f"Invalid secret {argument} {name!r}: expected {NAME_RULE}, e.g. 'flask' or 'payments/stripe'.",
            key=argument,
        )
    return name


def check_field_name(name: object, *, argument: str = "field") -> str:
    """Return ``name`` if it can be a field name to write: non-empty, no ``=``, whitespace or control characters.

    The name is never shown: ``--field api_key=sk-...`` would put a value in it.
    """
    if not isinstance(name, str) or not name or "=" in name or not name.isprintable() or any(c.isspace() for c in name):
        raise VaultConfigError(
            f"Invalid field name in {argument}: a field name is not empty and has no '=', whitespace or control"
            " characters (it is not shown here, as it may hold a value). Give the name alone; its value comes"
            " from the hidden prompt, --from-file or stdin.",
            key=argument,
        )
    return name


def check_path_part(key: str, value: str) -> str:
    """Validate a configured mount, prefix or environment the same way as names."""
    if not _is_valid(value):
        raise VaultConfigError(f"{key} must be {NAME_RULE}, got {value!r}.", key=key)
    return value


def split_reference(reference: str) -> tuple[str, str | None]:
    """Split ``'flask#secret_key'`` into ``('flask', 'secret_key')``."""
    name, sep, field = reference.partition("#")
    return name, (field if sep else None)


def relative_path(name: str, *, prefix: str | None, environment: str) -> str:
    """The secret's path inside its mount: ``<prefix>/<environment>/<name>``."""
    check_secret_name(name)
    parts = [p for p in (prefix, environment, name) if p]
    return "/".join(parts)


def base_path(*, prefix: str | None, environment: str) -> str:
    """The folder that holds every secret of this app and environment."""
    return "/".join(p for p in (prefix, environment) if p)
