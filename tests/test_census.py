"""``flask vault status --tokens``: the live tokens of the app's login role (flask_vault.auth.census),
against a real OpenBao server, with a policy that allows counting and one that does not."""

from __future__ import annotations

import json

import hvac
from auth_support import (
    APP_POLICY,
    AppRole,
    auth_server,
    make_approle,
    root,
    unique,
)
from flask import Flask

from flask_vault import FlaskVault, VaultClient, VaultSettings
from flask_vault.auth.census import ACCESSORS, LOOKUP_ACCESSOR, count_role_tokens
from flask_vault.devserver import OpenBaoServer

__all__ = ["auth_server", "root"]  # fixtures used by name

CENSUS_POLICY = (
    f'path "{ACCESSORS}" {{\n  capabilities = ["list", "sudo"]\n}}\n'
    f'path "{LOOKUP_ACCESSOR}" {{\n  capabilities = ["update"]\n}}\n'
)


def census_role(root: hvac.Client) -> AppRole:
    name = unique("census")
    root.sys.create_or_update_policy(name, CENSUS_POLICY)
    return make_approle(root, token_ttl="5m", token_policies=[APP_POLICY, name])


def test_status_counts_the_live_tokens_of_the_apps_role_and_only_those(
    auth_server: OpenBaoServer, root: hvac.Client
) -> None:
    role = census_role(root)
    other = make_approle(root, token_ttl="5m")
    others = [VaultClient(settings=VaultSettings.load(other.config(auth_server), {})) for _ in range(2)]
    siblings = [VaultClient(settings=VaultSettings.load(role.config(auth_server), {})) for _ in range(3)]
    for client in others + siblings:
        client.keeper.start()
    app = Flask("census")
    app.config.update(role.config(auth_server))
    FlaskVault(app)

    result = app.test_cli_runner().invoke(args=["vault", "status", "--tokens"])
    assert "Live tokens of this app's role: 4 (" in result.output  # the app's own and its three siblings'
    assert f"{role.name} at auth/approle/login" in result.output

    siblings[0].keeper.close()  # a worker that exits normally revokes its token
    as_json = app.test_cli_runner().invoke(args=["vault", "status", "--tokens", "--json"])
    tokens = json.loads(as_json.output)["tokens"]
    assert (tokens["alive"], tokens["role"], tokens["complete"]) == (3, role.name, True)
    for secret in (role.secret_id, role.role_id, *(c.token for c in siblings[1:] if c.token)):
        assert secret not in result.output + as_json.output


def test_without_the_policy_to_list_tokens_the_count_says_what_is_missing(
    auth_server: OpenBaoServer, root: hvac.Client
) -> None:
    role = make_approle(root, token_ttl="5m")
    client = VaultClient(settings=VaultSettings.load(role.config(auth_server), {}))
    census = count_role_tokens(client.keeper)
    assert census.alive is None and census.role == role.name
    assert f'path "{ACCESSORS}"' in census.describe() and "list" in census.describe()


def test_a_token_given_as_is_has_no_role_to_count(auth_server: OpenBaoServer) -> None:
    client = VaultClient(vault_url=auth_server.url, vault_token=auth_server.root_token)
    census = count_role_tokens(client.keeper)
    assert census.alive is None and census.reason and "not created by a login role" in census.reason


def test_an_operator_names_the_apps_role_and_counts_its_tokens_not_the_operators(
    auth_server: OpenBaoServer, root: hvac.Client
) -> None:
    role = make_approle(root, token_ttl="5m")  # the app's own policy: it may not list tokens
    workers = [VaultClient(settings=VaultSettings.load(role.config(auth_server), {})) for _ in range(3)]
    for worker in workers:
        worker.keeper.start()
    operator = Flask("census_operator")  # the same app, run by an operator with a token that may list tokens
    app_config = {k: v for k, v in role.config(auth_server).items() if k not in ("VAULT_ROLE_ID", "VAULT_SECRET_ID")}
    operator.config.update(app_config, VAULT_TOKEN=auth_server.root_token)
    FlaskVault(operator)
    runner = operator.test_cli_runner()

    counted = runner.invoke(args=["vault", "status", "--tokens", "--role", role.name])
    assert f"Live tokens of this app's role: 3 ({role.name} at any login path;" in counted.output
    workers[0].keeper.close()
    as_json = runner.invoke(args=["vault", "status", "--tokens", "--role", role.name, "--json"])
    assert json.loads(as_json.output)["tokens"]["alive"] == 2

    without = runner.invoke(args=["vault", "status", "--tokens"])
    assert "not created by a login role; name it with --role" in without.output
    alone = runner.invoke(args=["vault", "status", "--role", role.name])
    assert alone.exit_code == 2 and "add --tokens" in alone.output
    for text in (counted.output, as_json.output, without.output):
        assert role.secret_id not in text and role.role_id not in text
