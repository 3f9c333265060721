"""``VAULT_SECRETS``: config keys mapped to secret references, and where values came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from flask_vault.cache import CachedSecret
from flask_vault.database import build_database_url
from flask_vault.errors import VaultConfigError
from flask_vault.paths import check_secret_name, split_reference

if TYPE_CHECKING:
    from flask_vault.client import VaultClient

#: The config key whose bare secret reference (``"database"``) is the default database.
DATABASE_KEY = "SQLALCHEMY_DATABASE_URI"


@dataclass(frozen=True)
class SecretSource:
    """Where one config key's value came from. Never holds the value itself."""

    key: str
    #: "vault", "env", "config" or "missing".
    origin: str
    path: str | None = None
    field: str | None = None
    version: int | None = None
    env_var: str | None = None
    #: Why Vault did not provide it, when it did not (an error message without values).
    vault_error: str | None = None
    #: Where its login comes from when that is a database secrets engine role
    #: (``database/creds/app``); ``path`` then names the secret that gave the address, if any.
    lease: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_references(mapping: Mapping[str, str]) -> dict[str, tuple[str, str | None]]:
    """Config key -> (secret name, field or None), names validated."""
    parsed = {}
    for key, reference in mapping.items():
        name, field_name = split_reference(reference)
        try:
            check_secret_name(name)
        except VaultConfigError as exc:
            raise VaultConfigError(f"VAULT_SECRETS[{key!r}]: {exc.message}", key="VAULT_SECRETS") from None
        parsed[key] = (name, field_name or None)
    return parsed


def keys_by_name(mapping: Mapping[str, str]) -> dict[str, list[tuple[str, str | None]]]:
    """Secret name -> [(config key, field)], in mapping order."""
    grouped: dict[str, list[tuple[str, str | None]]] = {}
    for key, (name, field_name) in parse_references(mapping).items():
        grouped.setdefault(name, []).append((key, field_name))
    return grouped


def value_for(entry: CachedSecret, field_name: str | None, client: VaultClient) -> Any:
    """A field's value, or a database URL built from the whole secret when no field is named."""
    if field_name is None:
        return build_database_url(entry.data, path=entry.path)
    return client.kv.field(entry, field_name)
