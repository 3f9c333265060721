"""What the docs say about the server and the health details, checked against the real thing.

* health details show the token's policy names (never a policy body);
* the app's ``token_id`` matches the server's audit log only with ``hmac_accessor=false``;
  with the default, ``sys/audit-hash`` of a known accessor is what the log holds;
* the Agent configuration in docs/deployment.md works with a real ``bao agent``.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from core_support import poll
from flask import Flask

from flask_vault import FlaskVault, VaultClient
from flask_vault.devserver import OpenBaoServer, find_bao, stop_process
from flask_vault.observe.audit import accessor_hash

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SECRET = {"secret_key": "docs-claims-secret-6e1f0a"}


def _code_block(page: str, language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", (DOCS / page).read_text(), re.DOTALL)
    matches = [block for block in blocks if containing in block]
    assert len(matches) == 1, f"{page}: expected one {language} block containing {containing!r}"
    return matches[0]


def _audit_stanza(log: Path, *, hmac_accessor: bool) -> str:
    """The stanza from docs/operations.md, pointed at ``log`` (without the option for the default)."""
    stanza = _code_block("operations.md", "hcl", 'audit "file"').replace("/var/log/openbao/audit.log", str(log))
    if hmac_accessor:
        stanza = "\n".join(line for line in stanza.splitlines() if "hmac_accessor" not in line)
    return stanza


@pytest.fixture
def audit_records() -> Iterator[list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.vault)  # type: ignore[attr-defined]

    logger = logging.getLogger("flask_vault.audit")
    handler, previous = Keep(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(previous)


def _read_once(server: OpenBaoServer, token: str) -> None:
    root = server.root_client()
    root.secrets.kv.v2.create_or_update_secret("docs/development/flask", secret=SECRET)
    client = VaultClient(vault_url=server.url, vault_token=token, path_prefix="docs", environment="development")
    try:
        assert client.get_secret("flask", "secret_key") == SECRET["secret_key"]
    finally:
        client.keeper.close(revoke=False)


def _server_read_accessors(log: Path) -> list[str]:
    def reads() -> list[str]:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        return [
            line["auth"]["accessor"]
            for line in lines
            if line["type"] == "response"
            and line["request"]["operation"] == "read"
            and line["request"]["path"] == "secret/data/docs/development/flask"
        ]

    return poll(reads, timeout=5)


@pytest.mark.parametrize("hmac_accessor", [False, True], ids=["hmac_accessor=false", "default"])
def test_token_id_links_to_the_server_audit_log_only_without_hmac_accessor(
    tmp_path: Path, audit_records: list[dict[str, Any]], hmac_accessor: bool
) -> None:
    log = tmp_path / "audit.log"
    with OpenBaoServer(config=_audit_stanza(log, hmac_accessor=hmac_accessor)) as server:
        server.root_client().sys.create_or_update_policy(
            "docs-read", 'path "secret/data/docs/*" { capabilities = ["read"] }'
        )
        token = server.root_client().auth.token.create(policies=["docs-read"], ttl="10m")["auth"]
        _read_once(server, token["client_token"])
        app_ids = {r["token_id"] for r in audit_records if r["operation"] == "read" and r["outcome"] == "ok"}
        assert app_ids == {accessor_hash(token["accessor"])}

        (logged,) = _server_read_accessors(log)
        if not hmac_accessor:
            assert logged == token["accessor"]
            assert accessor_hash(logged) in app_ids
        else:
            assert logged.startswith("hmac-sha256:")
            assert accessor_hash(logged) not in app_ids
            # The documented way round: the device's HMAC of an accessor you know.
            answer = server.root_client().adapter.post("/v1/sys/audit-hash/file", json={"input": token["accessor"]})
            body = answer.json() if hasattr(answer, "json") else answer
            assert body["data"]["hash"] == logged


def test_health_details_show_policy_names_but_no_policy_body(
    app: Flask, vault_root: hvac.Client, openbao_server: OpenBaoServer
) -> None:
    policy = 'path "secret/data/store-erp/test/*" { capabilities = ["read"] }'
    vault_root.sys.create_or_update_policy("docs-claims-app", policy)
    token = vault_root.auth.token.create(policies=["docs-claims-app"], ttl="10m")["auth"]["client_token"]
    app.config.update(VAULT_TOKEN=token, VAULT_HEALTH_DETAILS=True)
    FlaskVault(app)
    response = app.test_client().get("/health/vault")
    body = response.get_json()
    (login,) = body["checks"]["vault:login"]
    assert login["policies"] == ["default", "docs-claims-app"]
    text = response.get_data(as_text=True)
    assert "capabilities" not in text and 'path \\"' not in text
    # ... and the docs say so, instead of "never a policy".
    health = (DOCS / "health.md").read_text()
    assert "policy *names*" in health and '"policies": [' in health


@pytest.mark.slow
def test_the_agent_configuration_in_the_deployment_guide_feeds_the_app(
    tmp_path: Path, openbao_server: OpenBaoServer, vault_root: hvac.Client, seeded: dict[str, Any]
) -> None:
    if "approle/" not in vault_root.sys.list_auth_methods()["data"]:
        vault_root.sys.enable_auth_method("approle")
    vault_root.sys.create_or_update_policy(
        "docs-agent", 'path "secret/data/store-erp/test/*" { capabilities = ["read"] }'
    )
    vault_root.auth.approle.create_or_update_approle("docs-agent", token_policies=["docs-agent"], token_ttl="10m")
    (tmp_path / "role-id").write_text(vault_root.auth.approle.read_role_id("docs-agent")["data"]["role_id"])
    (tmp_path / "secret-id").write_text(vault_root.auth.approle.generate_secret_id("docs-agent")["data"]["secret_id"])
    sink = tmp_path / "vault-token"
    config = (
        _code_block("deployment.md", "hcl", "auto_auth")
        .replace("https://vault.example.com:8200", openbao_server.url)
        .replace("/etc/store-erp/", f"{tmp_path}/")
        .replace("/run/store-erp/vault-token", str(sink))
    )
    (tmp_path / "agent.hcl").write_text(config)
    with open(tmp_path / "agent.log", "wb") as agent_log:
        agent = subprocess.Popen(
            [find_bao(), "agent", f"-config={tmp_path / 'agent.hcl'}"],
            stdout=agent_log,
            stderr=subprocess.STDOUT,
            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        poll(lambda: sink.exists() and sink.read_text().strip(), timeout=20)
        app = Flask("docs_agent")
        app.config.update(
            TESTING=True,
            VAULT_URL=openbao_server.url,
            VAULT_TOKEN_FILE=str(sink),
            VAULT_PATH_PREFIX="store-erp",
            VAULT_ENVIRONMENT="test",
            VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"},
            VAULT_STARTUP_TIMEOUT=0,
        )
        vault = FlaskVault(app)
        assert app.config["SECRET_KEY"] == seeded["flask"]["secret_key"]
        with app.app_context():
            assert vault.client.health_check()["policies"] == ["default", "docs-agent"]
    finally:
        stop_process(agent)
