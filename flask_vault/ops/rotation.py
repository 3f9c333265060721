"""Plan a rotation (strong new values for some fields) or a rollback to an old version.

Which fields rotate and how their values are made is ``VAULT_ROTATION``, parsed at
start-up into ``settings.rotation`` (see :mod:`flask_vault.rotation_rules`). These
functions only read and decide; :func:`flask_vault.ops.write.apply_write` carries the
plan out (backup first, check-and-set, paired PostgreSQL password, audit, cache).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask_vault.display import did_you_mean, safe_text
from flask_vault.errors import SecretNotFoundError, VaultConfigError
from flask_vault.ops.write import ChangeResult, WritePlan, apply_write, plan_write, read_current, require_kv2
from flask_vault.paths import check_secret_name
from flask_vault.rotation_rules import PROTECTED_FIELDS, FieldRule, RotationRules

if TYPE_CHECKING:
    from flask_vault.cache import CachedSecret
    from flask_vault.client import VaultClient
    from flask_vault.ops.backup import BackupStore

_KEY = "VAULT_ROTATION"


def plan_rotation(
    client: VaultClient,
    name: str,
    rules: RotationRules | None = None,
    fields: tuple[str, ...] | list[str] | None = None,
    *,
    source: str = "--field",
) -> WritePlan:
    """Read the secret and decide which fields rotate (``rules``: default the client's settings).

    Needs a KV v2 mount. Nothing is written and no value is generated yet.
    """
    require_kv2(client, "rotate")
    rules = rules if rules is not None else client.settings.rotation
    check_secret_name(name)
    chosen = tuple(rules.rule(name, f, source=source) for f in dict.fromkeys(fields or ()))
    current = read_current(client, name, action="rotate")
    assert current is not None
    if not chosen:
        chosen = rules.fields_for(name)
        if not chosen:
            raise not_configured_error(client, name, current)
        if name not in rules.configured:
            # Built-in defaults adapt to the secret (an app without JWT has no jwt_secret).
            chosen = tuple(rule for rule in chosen if rule.field in current.data) or chosen
    _check_fields_present(client, current, chosen, f" Fix {_KEY} or the {source} option.")
    return _rotation_plan(client, name, current, chosen)


def plan_field_rotation(client: VaultClient, name: str, field: str, value: str | None = None) -> WritePlan:
    """One field: ``value``, or a new one made by the field's ``VAULT_ROTATION`` rule (the defaults if none).

    What :meth:`VaultClient.rotate_secret` does. Unlike ``flask vault rotate`` it also works
    on a KV v1 mount, where the write has no check-and-set.
    """
    check_secret_name(name)
    if not isinstance(field, str) or not field:
        raise VaultConfigError("field must be a non-empty field name.", key="field")
    rule = client.settings.rotation.rule(name, field, source="rotate_secret")
    current = read_current(client, name, action="rotate")
    assert current is not None
    _check_fields_present(client, current, (rule,), "")
    if value is None:
        return _rotation_plan(client, name, current, (rule,))
    return plan_write(client, name, current, {**current.data, field: value}, action="rotate", database=rule.postgres)


def _rotation_plan(client: VaultClient, name: str, current: CachedSecret, rules: tuple[FieldRule, ...]) -> WritePlan:
    postgres = next((rule.postgres for rule in rules if rule.field == "password"), None)
    return plan_write(client, name, current, current.data, action="rotate", generate=rules, database=postgres)


def _check_fields_present(client: VaultClient, current: CachedSecret, rules: tuple[FieldRule, ...], hint: str) -> None:
    missing = [rule.field for rule in rules if rule.field not in current.data]
    if missing:
        present = safe_text(", ".join(sorted(current.data))) or "none"
        guess = did_you_mean(missing[0], current.data) if len(missing) == 1 else ""
        raise SecretNotFoundError(
            f"{current.path} has no field {', '.join(map(repr, missing))} to rotate; fields present: {present}."
            + guess
            + hint,
            url=client.url,
            mount=client.mount_point,
            path=current.path,
        )


def rotate(
    client: VaultClient,
    name: str,
    rules: RotationRules | None = None,
    store: BackupStore | None = None,
    fields: tuple[str, ...] | list[str] | None = None,
) -> ChangeResult:
    """Rotate the secret's configured fields (or ``fields``): backup, check-and-set, paired DB password."""
    return apply_write(client, plan_rotation(client, name, rules, fields), store)


def plan_rollback(client: VaultClient, name: str, version: int) -> WritePlan:
    """Plan writing version ``version``'s data as the secret's new version (history stays intact)."""
    require_kv2(client, "rollback")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise VaultConfigError(f"--version must be a version number >= 1, got {version!r}.", key="version")
    current = read_current(client, name, action="rollback")
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
    return plan_write(client, name, current, target.data, action="rollback")


def rollback(client: VaultClient, name: str, version: int, store: BackupStore | None = None) -> ChangeResult:
    """Write version ``version``'s data as the secret's new version (backup first, check-and-set)."""
    return apply_write(client, plan_rollback(client, name, version), store)


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
