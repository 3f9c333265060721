"""VAULT_ROTATION parsing and value generation, and the shipped policy templates (no server)."""

from __future__ import annotations

import math
import string
from pathlib import Path

import pytest

from flask_vault import VaultConfigError
from flask_vault.ops.policies import APP_POLICY, DATABASE_POLICY, ROTATOR_POLICY, render_policy
from flask_vault.rotation_rules import ALPHABETS, DEFAULT_LENGTH, FieldRule, RotationRules

ROOT = Path(__file__).resolve().parent.parent


def fixed_generator(secret: str, field: str) -> str:
    return f"generated-{secret}-{field}-0123456789"


def test_defaults_rotate_flask_keys_and_database_password() -> None:
    rules = RotationRules.from_config({})
    assert [r.field for r in rules.fields_for("flask")] == ["secret_key", "jwt_secret"]
    assert [r.field for r in rules.fields_for("database")] == ["password"]
    assert rules.fields_for("payments") == ()
    assert rules.names() == ["database", "flask"]


def test_default_value_is_64_urlsafe_characters_and_differs_each_time() -> None:
    rule = RotationRules.from_config({}).fields_for("flask")[0]
    values = {rule.generate() for _ in range(20)}
    assert len(values) == 20
    for value in values:
        assert len(value) == DEFAULT_LENGTH
        assert set(value) <= set(ALPHABETS["urlsafe"])


def test_length_and_alphabet_per_field() -> None:
    rules = RotationRules.from_config(
        {"database": {"password": {"length": 40, "alphabet": "alphanumeric"}}, "pins": {"code": {"alphabet": "hex"}}}
    )
    value = rules.fields_for("database")[0].generate()
    assert len(value) == 40 and value.isalnum()
    hexed = rules.fields_for("pins")[0].generate()
    assert set(hexed) <= set(string.hexdigits.lower()) and len(hexed) == DEFAULT_LENGTH


def test_a_literal_alphabet_is_used_as_given() -> None:
    rule = RotationRules.from_config({"x": {"k": {"alphabet": "ab", "length": 200}}}).fields_for("x")[0]
    assert set(rule.generate()) <= {"a", "b"}


def test_list_form_and_disabling_a_default() -> None:
    rules = RotationRules.from_config({"flask": ["secret_key"], "database": None})
    assert [r.field for r in rules.fields_for("flask")] == ["secret_key"]
    assert rules.fields_for("database") == ()
    assert rules.names() == ["flask"]
    assert rules.configured == frozenset({"flask", "database"})


def test_generator_as_dotted_path_gets_secret_and_field() -> None:
    rules = RotationRules.from_config({"payments": {"hook": {"generator": f"{__name__}:fixed_generator"}}})
    assert rules.fields_for("payments")[0].generate() == "generated-payments-hook-0123456789"
    dotted = RotationRules.from_config({"payments": {"hook": {"generator": f"{__name__}.fixed_generator"}}})
    assert dotted.fields_for("payments")[0].generate() == "generated-payments-hook-0123456789"


def test_generator_callable_without_arguments_is_called_without_arguments() -> None:
    rules = RotationRules.from_config({"payments": {"hook": {"generator": lambda: "no-args-value-123"}}})
    assert rules.fields_for("payments")[0].generate() == "no-args-value-123"


def test_generator_returning_a_non_string_is_refused_without_showing_it() -> None:
    rule = FieldRule("payments", "hook", generator=lambda: 12345678)
    with pytest.raises(VaultConfigError, match="returned int, expected a non-empty string") as info:
        rule.generate()
    assert "12345678" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"database": ["host"]}, "never rotates"),
        ({"database": {"username": {}}}, "never rotates"),
        ({"database": {"port": {}}}, "never rotates"),
        ({"x": {"k": {"length": 8}}}, "weaker than 128 bits; use a length of at least 22"),
        ({"x": {"k": {"alphabet": "aab"}}}, "distinct characters"),
        ({"x": {"k": {"length": 0}}}, "whole number"),
        ({"x": {"k": {"length": True}}}, "whole number"),
        ({"x": {"k": {"colour": "red"}}}, "unknown option"),
        ({"x": {"k": {"generator": "no_such_module_xyz:make"}}}, "cannot be imported"),
        ({"x": {"k": {"generator": "string.ascii_letters"}}}, "is not callable"),
        ({"x": {"k": {"postgres": "maybe"}}}, "true, false or absent"),
        ({"x": 42}, "list of field names or a mapping"),
    ],
)
def test_bad_rotation_settings_name_the_key_and_the_problem(spec: dict, message: str) -> None:
    with pytest.raises(VaultConfigError, match=message) as info:
        RotationRules.from_config(spec)
    assert info.value.key == "VAULT_ROTATION"
    assert "VAULT_ROTATION" in str(info.value)


def test_entropy_floor_matches_alphabet_size() -> None:
    needed = math.ceil(128 / math.log2(16))
    RotationRules.from_config({"x": {"k": {"alphabet": "hex", "length": needed}}})
    with pytest.raises(VaultConfigError):
        RotationRules.from_config({"x": {"k": {"alphabet": "hex", "length": needed - 1}}})


def test_explicit_field_without_settings_gets_defaults_but_never_a_protected_one() -> None:
    rules = RotationRules.from_config({})
    assert rules.rule("payments", "api_key") == FieldRule("payments", "api_key")
    with pytest.raises(VaultConfigError, match="never rotates"):
        rules.rule("database", "host")


def test_shipped_policy_files_are_the_templates() -> None:
    assert (ROOT / "flask_vault" / "policies" / "app.hcl").read_text() == APP_POLICY
    assert (ROOT / "flask_vault" / "policies" / "rotator.hcl").read_text() == ROTATOR_POLICY
    assert (ROOT / "flask_vault" / "policies" / "database.hcl").read_text() == DATABASE_POLICY


def test_the_database_policy_names_one_role_and_the_lease_paths_only() -> None:
    hcl = render_policy("database", prefix="store-erp", environment="production", database_role="store-erp-app")
    assert 'path "database/creds/store-erp-app"' in hcl and 'path "database/static-creds/store-erp-app"' in hcl
    assert 'path "sys/leases/renew"' in hcl and 'path "sys/leases/revoke"' in hcl
    assert "secret/" not in hcl and "${" not in hcl and "sudo" not in hcl and "*" not in hcl
    assert 'path "db/prod/creds/r"' in render_policy(
        "database", prefix=None, environment="e", database_mount="db/prod", database_role="r"
    )
    with pytest.raises(VaultConfigError, match="VAULT_DATABASE_ROLE, which is not set"):
        render_policy("database", prefix=None, environment="e")
    with pytest.raises(VaultConfigError, match="VAULT_DATABASE_ROLE must be"):
        render_policy("database", prefix=None, environment="e", database_role='x" { capabilities = ["sudo"] } #')


def test_rendered_policies_name_kv2_data_and_metadata_paths() -> None:
    app = render_policy("app", prefix="store-erp", environment="production")
    assert 'path "secret/data/store-erp/production/*"' in app
    assert 'path "secret/metadata/store-erp/production/*"' in app
    assert "${" not in app and "create" not in app and "update" not in app
    rotator = render_policy("rotator", prefix="store-erp", environment="production", transit_key="backups")
    assert '"create", "read", "update"' in rotator
    assert 'path "transit/encrypt/backups"' in rotator and 'path "transit/decrypt/backups"' in rotator
    assert "delete" not in rotator and "destroy" not in rotator
    assert "transit" not in render_policy("rotator", prefix="p", environment="e")
    assert 'path "kv/data/e/*"' in render_policy("app", mount="kv", prefix=None, environment="e")


def test_render_policy_refuses_unsafe_names() -> None:
    with pytest.raises(VaultConfigError):
        render_policy("app", prefix="a", environment='x" { capabilities = ["sudo"] } #')
    with pytest.raises(VaultConfigError):
        render_policy("rotator", prefix="a", environment="b", transit_key="k/../../sys")
    with pytest.raises(VaultConfigError, match="Unknown policy"):
        render_policy("admin", prefix="a", environment="b")
