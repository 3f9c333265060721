"""Helpers for the `flask vault` command tests (plain functions, not fixtures).

Each test works in its own environment (``unique_env``) so it never disturbs the
seeded ``store-erp/test`` secrets or other tests running against the same server.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import hvac
from click.testing import Result
from flask import Flask

from flask_vault import FlaskVault

PREFIX = "store-erp"


def seed_env(
    vault_root: hvac.Client,
    environment: str,
    *,
    mount: str = "secret",
    database: dict[str, Any] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Write fresh, unique flask and database secrets (and ``extra`` ones) for one environment."""
    data = {
        "flask": {"secret_key": f"sk-{secrets.token_hex(16)}", "jwt_secret": f"jwt-{secrets.token_hex(16)}"},
        "database": database or {"url": "sqlite:///:memory:"},
        **(extra or {}),
    }
    kv = vault_root.secrets.kv.v2
    for name, values in data.items():
        path = f"{PREFIX}/{environment}/{name}"
        try:
            kv.create_or_update_secret(path, values, mount_point=mount)
        except hvac.exceptions.InvalidRequest:  # a cas_required mount
            kv.create_or_update_secret(path, values, mount_point=mount, cas=0)
    return data


def make_cli_app(base_config: dict[str, Any], environment: str, tmp_path: Path, **config: Any) -> Flask:
    """An app with FlaskVault for ``environment``, its instance folder under ``tmp_path``."""
    app = Flask("store_erp_cli", instance_path=str(tmp_path / "instance"))
    app.config.update(base_config)
    app.config.update(VAULT_ENVIRONMENT=environment, VAULT_HEALTH_URL=None, VAULT_MAX_RETRIES=0)
    app.config.update(config)
    FlaskVault(app)
    return app


def vault(app: Flask, *args: str, input: str | None = None) -> Result:
    """Run ``flask vault ARGS`` in-process."""
    return app.test_cli_runner().invoke(args=["vault", *args], input=input)


def current(vault_root: hvac.Client, environment: str, name: str, mount: str = "secret") -> tuple[int, dict[str, Any]]:
    """(version, data) of a secret as Vault has it now."""
    response = vault_root.secrets.kv.v2.read_secret_version(
        f"{PREFIX}/{environment}/{name}", mount_point=mount, raise_on_deleted_version=True
    )
    return int(response["data"]["metadata"]["version"]), dict(response["data"]["data"])


def backup_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.json") if not p.name.startswith("."))


def backup_data(path: Path) -> dict[str, Any]:
    """The plaintext data of a backup file (fails on an encrypted one)."""
    data: dict[str, Any] = json.loads(path.read_text())["data"]
    return data


def values_of(data: dict[str, Any]) -> set[str]:
    return {str(v) for v in data.values() if len(str(v)) >= 8}
