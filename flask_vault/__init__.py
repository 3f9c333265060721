"""flask-vault: Flask secrets from HashiCorp Vault or OpenBao."""

from .client import VaultClient, get_secret, get_vault_client
from .errors import (
    BackupError,
    DatabaseRotationError,
    SecretNotFoundError,
    VaultAuthError,
    VaultConfigError,
    VaultConflictError,
    VaultError,
    VaultPermissionError,
    VaultUnavailableError,
)
from .extension import FlaskVault
from .mapping import SecretSource
from .refresh import SecretChange, secret_changed
from .settings import VaultSettings

__all__ = [
    "BackupError",
    "DatabaseRotationError",
    "FlaskVault",
    "SecretChange",
    "SecretNotFoundError",
    "SecretSource",
    "VaultAuthError",
    "VaultClient",
    "VaultConfigError",
    "VaultConflictError",
    "VaultError",
    "VaultPermissionError",
    "VaultSettings",
    "VaultUnavailableError",
    "get_secret",
    "get_vault_client",
    "secret_changed",
]
