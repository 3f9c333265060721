"""flask-vault: Flask secrets from HashiCorp Vault or OpenBao."""

from flask_vault.client import VaultClient, get_secret, get_vault_client
from flask_vault.errors import (
    BackupError,
    DatabaseRotationError,
    SecretNotFoundError,
    VaultAuthError,
    VaultConfigError,
    VaultConflictError,
    VaultError,
    VaultPermissionError,
    VaultTLSError,
    VaultUnavailableError,
)
from flask_vault.extension import FlaskVault
from flask_vault.mapping import SecretSource
from flask_vault.refresh import SecretChange, secret_changed
from flask_vault.settings import VaultSettings

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
    "VaultTLSError",
    "VaultUnavailableError",
    "get_secret",
    "get_vault_client",
    "secret_changed",
]
