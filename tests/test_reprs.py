"""No repr of any flask-vault object, and nothing left in ``app.config``, shows a credential or a value.

An AppRole app with a health token runs a JWT_SECRET_KEY rotation (so previous signing keys
are kept), a write and a backup; then every flask-vault object reachable from its state is
repr-ed: what a debugger, an error tracker's captured locals or a log line would show.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from flask import Flask

from flask_vault import FlaskVault, VaultError, VaultSettings
from flask_vault.devserver import OpenBaoServer
from flask_vault.ops.backup import load_backup
from flask_vault.ops.rotation import plan_rotation
from flask_vault.state import get_state
from tests.auth_support import (
    APP_POLICY,
    DATABASE_SECRET,
    ENVIRONMENT,
    FLASK_SECRET,
    PREFIX,
    auth_server,
    make_approle,
    root,
)

__all__ = ["auth_server", "root"]  # fixtures used by name

HEALTH_TOKEN = f"health-marker-{secrets.token_hex(8)}"


def flask_vault_objects(start: object, limit: int = 5000) -> Iterator[object]:
    """Every object of a flask_vault class reachable from ``start`` through attributes and containers."""
    seen: set[int] = set()
    pending: list[tuple[object, int]] = [(start, 0)]
    while pending and len(seen) < limit:
        obj, depth = pending.pop()
        if id(obj) in seen or depth > 8:
            continue
        seen.add(id(obj))
        module = type(obj).__module__ or ""
        if isinstance(obj, dict):
            pending += [(v, depth + 1) for v in obj.values()]
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            pending += [(v, depth + 1) for v in obj]
            continue
        if not module.startswith("flask_vault"):
            continue
        yield obj
        attributes = getattr(obj, "__dict__", None) or {}
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                attributes = {**attributes, name: getattr(obj, name)}
        pending += [(v, depth + 1) for v in attributes.values()]


@pytest.fixture(params=["kv2", "kv1"])
def rotated_app(
    request: pytest.FixtureRequest, auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path
) -> Iterator[tuple[Flask, list[str]]]:
    """An AppRole app after a rotation of its flask secret.

    On KV v2 the keyring keeps the replaced signing keys (by version); on KV v1, which has no
    versions, the refresher keeps the previous JWT_SECRET_KEY values itself.
    """
    mount = "secret" if request.param == "kv2" else f"kv1-{secrets.token_hex(4)}"
    path = f"{PREFIX}/{ENVIRONMENT}/flask"
    policies = [APP_POLICY]
    if request.param == "kv1":
        root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
        for name, data in (("flask", FLASK_SECRET), ("database", DATABASE_SECRET)):
            root.secrets.kv.v1.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/{name}", data, mount_point=mount)
        kv1_read = f'path "{mount}/{PREFIX}/{ENVIRONMENT}/*" {{\n  capabilities = ["read", "list"]\n}}\n'
        root.sys.create_or_update_policy(f"{mount}-read", kv1_read)
        policies.append(f"{mount}-read")
    role = make_approle(root, token_policies=policies)
    app = Flask("store_erp_reprs", instance_path=str(tmp_path / "instance"))
    app.config.update(
        role.config(auth_server, VAULT_HEALTH_TOKEN=HEALTH_TOKEN, VAULT_MAX_RETRIES=0, VAULT_MOUNT_POINT=mount)
    )
    FlaskVault(app)
    state = get_state(app)
    token = state.client.token
    assert token
    rotated = {"secret_key": f"new-sk-{secrets.token_hex(8)}", "jwt_secret": f"new-jwt-{secrets.token_hex(8)}"}
    try:
        if mount == "secret":
            root.secrets.kv.v2.create_or_update_secret(path, rotated)
        else:
            root.secrets.kv.v1.create_or_update_secret(path, rotated, mount_point=mount)
        with app.app_context():
            state.client.read("flask", use_cache=False)  # the refresher takes the new version
            if mount == "secret":
                keys = state.keyring.keys("JWT_SECRET_KEY")  # type: ignore[union-attr]
                assert keys is not None and keys.for_version(1) == FLASK_SECRET["jwt_secret"]
            else:
                assert [key for _, key in state.refresher.previous_jwt_keys] == [FLASK_SECRET["jwt_secret"]]  # type: ignore[union-attr]
            markers = [role.role_id, role.secret_id, token, HEALTH_TOKEN, *FLASK_SECRET.values(), *rotated.values()]
            yield app, markers
    finally:
        if mount == "secret":
            root.secrets.kv.v2.create_or_update_secret(path, FLASK_SECRET)
        else:
            root.sys.disable_secrets_engine(mount)


def test_no_repr_reachable_from_the_state_shows_a_credential_or_value(
    rotated_app: tuple[Flask, list[str]], tmp_path: Path
) -> None:
    app, markers = rotated_app
    state = get_state(app)
    client = state.client
    extra: list[object] = [app.extensions["vault"], state.settings, client.cache.peek(client.full_path("flask"))]
    if client.kv.version() == 2:
        extra.append(plan_rotation(client, "flask", state.settings.rotation))
    store = client.backups
    saved = store.save("flask", client.read_version("flask"))
    extra += [store, load_backup(saved, client)]
    try:
        client.get_secret("nothing-here")
    except VaultError as exc:
        extra.append(exc)
    shown = [repr(obj) for start in (state, *extra) for obj in flask_vault_objects(start)]
    assert len(shown) > 20, "the walk found too little to prove anything"
    for kind in ("VaultState", "ConfigRefresher", "TokenKeeper", "AppRoleAuth", "VaultSettings", "CachedSecret"):
        assert any(kind in text for text in shown), kind
    if state.client.kv.version() == 2:
        assert any("KeyVersion" in text for text in shown)
    leaks = [text for text in shown if any(marker in text for marker in markers)]
    assert not leaks


def test_previous_jwt_signing_keys_stay_out_of_the_states_repr(rotated_app: tuple[Flask, list[str]]) -> None:
    app, _ = rotated_app
    state = get_state(app)
    assert FLASK_SECRET["jwt_secret"] not in repr(state)
    assert FLASK_SECRET["jwt_secret"] not in repr(app.extensions["vault"])
    assert FLASK_SECRET["jwt_secret"] not in repr(state.refresher) + repr(state.keyring)


def test_every_credential_leaves_app_config_and_the_health_token_still_works(
    rotated_app: tuple[Flask, list[str]],
) -> None:
    app, markers = rotated_app
    for key in ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_HEALTH_TOKEN", "VAULT_TOKEN"):
        assert key not in app.config
    assert not [m for m in markers[:4] if m in repr(dict(app.config))]
    client = app.test_client()
    plain = client.get("/health/vault").get_data(as_text=True)
    detailed = client.get("/health/vault", headers={"Authorization": f"Bearer {HEALTH_TOKEN}"})
    assert '"origin"' in detailed.get_data(as_text=True) and '"origin"' not in plain


def test_the_settings_repr_hides_the_role_id() -> None:
    settings = VaultSettings.load({"VAULT_ROLE_ID": "role-id-marker-5d1e", "VAULT_SECRET_ID": "s"}, {})
    assert settings.role_id == "role-id-marker-5d1e"
    assert "role-id-marker-5d1e" not in repr(settings)
