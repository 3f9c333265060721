"""Login methods against a real OpenBao server: token, token file, ~/.vault-token, AppRole
(secret_id, secret_id file, wrapped secret_id), JWT with a key pair made here, and
Kubernetes (requests_mock only: no Kubernetes API server runs in these tests).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hvac
import jwt as pyjwt
import pytest
import requests
import requests_mock as rm
from auth_support import (
    APP_POLICY,
    ENVIRONMENT,
    FLASK_SECRET,
    PREFIX,
    LogCapture,
    assert_no_leak,
    auth_server,
    flask_vault_logs,
    make_approle,
    root,
    wait_for,
    wrapped_secret_id,
)
from core_support import FakeClock
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask

from flask_vault import FlaskVault, VaultAuthError, VaultClient, VaultConfigError, VaultSettings, VaultUnavailableError
from flask_vault.auth.methods import (
    AUTH_METHODS,
    AppRoleAuth,
    Authenticator,
    JWTAuth,
    KubernetesAuth,
    LoginResult,
    TokenAuth,
    authenticator_from_settings,
    infer_auth_method,
)
from flask_vault.devserver import OpenBaoServer

__all__ = ["auth_server", "flask_vault_logs", "root"]  # fixtures used by name

JWT_ISSUER = "https://ci.example.test"
JWT_AUDIENCE = "flask-vault-tests"


def init(config: dict[str, Any], name: str = "auth_app") -> Flask:
    app = Flask(name)
    app.config.update(config)
    FlaskVault(app)
    return app


def client_of(app: Flask) -> VaultClient:
    client: VaultClient = app.extensions["vault"].client
    return client


def root_config(server: OpenBaoServer, **extra: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "VAULT_URL": server.url,
        "VAULT_PATH_PREFIX": PREFIX,
        "VAULT_ENVIRONMENT": ENVIRONMENT,
        "VAULT_STARTUP_TIMEOUT": 0,
        **extra,
    }


def app_token(root: hvac.Client, ttl: str = "1h", **params: Any) -> str:
    token: str = root.auth.token.create(policies=[APP_POLICY], ttl=ttl, **params)["auth"]["client_token"]
    return token


# -- choosing the method (no request is sent) --------------------------------------------


@pytest.mark.parametrize(
    ("config", "method"),
    [
        ({}, "token"),
        ({"VAULT_TOKEN": "t"}, "token"),
        ({"VAULT_TOKEN_FILE": "/run/agent/token"}, "token"),
        ({"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s"}, "approle"),
        ({"VAULT_ROLE_ID": "r", "VAULT_TOKEN": "t"}, "approle"),
        ({"VAULT_JWT_ROLE": "ci", "VAULT_JWT": "x.y.z"}, "jwt"),
        ({"VAULT_K8S_ROLE": "store"}, "kubernetes"),
        ({"VAULT_AUTH_METHOD": "token", "VAULT_ROLE_ID": "r"}, "token"),
        ({"VAULT_AUTH_METHOD": "JWT", "VAULT_JWT_ROLE": "ci", "VAULT_JWT_FILE": "/tmp/jwt"}, "jwt"),
    ],
)
def test_auth_method_is_inferred_from_the_settings_present(config: dict[str, Any], method: str) -> None:
    settings = VaultSettings.load(config, {})
    assert infer_auth_method(settings) == method
    assert authenticator_from_settings(settings).method == method


def test_auth_method_is_inferred_from_environment_variables_too() -> None:
    settings = VaultSettings.load({}, {"VAULT_K8S_ROLE": "store", "VAULT_K8S_MOUNT": "k8s-prod"})
    authenticator = authenticator_from_settings(settings)
    assert isinstance(authenticator, KubernetesAuth)
    assert authenticator.mount == "k8s-prod"
    assert str(authenticator.jwt_file) == "/var/run/secrets/kubernetes.io/serviceaccount/token"


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"VAULT_ROLE_ID": "r", "VAULT_JWT_ROLE": "ci"}, "VAULT_AUTH_METHOD"),
        ({"VAULT_AUTH_METHOD": "approle"}, "VAULT_ROLE_ID"),
        ({"VAULT_SECRET_ID": "s"}, "VAULT_ROLE_ID"),
        ({"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s", "VAULT_SECRET_ID_FILE": "/f"}, "VAULT_SECRET_ID_FILE"),
        ({"VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "s", "VAULT_WRAPPED_SECRET_ID": "w"}, "VAULT_WRAPPED_SECRET_ID"),
        ({"VAULT_JWT_ROLE": "ci"}, "VAULT_JWT"),
        ({"VAULT_JWT": "x.y.z"}, "VAULT_JWT_ROLE"),
        ({"VAULT_JWT_ROLE": "ci", "VAULT_JWT": "x.y.z", "VAULT_JWT_FILE": "/f"}, "VAULT_JWT_FILE"),
        ({"VAULT_AUTH_METHOD": "kubernetes"}, "VAULT_K8S_ROLE"),
        ({"VAULT_ROLE_ID": "r", "VAULT_APPROLE_MOUNT": "../sys"}, "VAULT_APPROLE_MOUNT"),
        ({"VAULT_AUTH_METHOD": "ldap"}, "VAULT_AUTH_METHOD"),
    ],
)
def test_bad_login_settings_fail_init_app_before_any_request(config: dict[str, Any], key: str) -> None:
    app = Flask("bad_login")
    app.config.update({"VAULT_URL": "http://vault.test:8200", **config})
    with rm.Mocker() as mocked, pytest.raises(VaultConfigError) as excinfo:
        FlaskVault(app)
    assert mocked.call_count == 0
    assert excinfo.value.key == key
    for secret in ("x.y.z", '"s"', "'s'", "'w'"):
        assert secret not in str(excinfo.value)


class _CertAuth(Authenticator):
    """A login method as a newcomer would add one: a class, and one entry in AUTH_METHODS."""

    method = "cert"

    @classmethod
    def from_settings(cls, settings: VaultSettings) -> _CertAuth:
        return cls()

    def login(self, transport: Any) -> LoginResult:
        return LoginResult(token="s.from-cert", ttl=0, created=True)


def test_a_login_method_is_one_class_plus_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = VaultSettings.load({"VAULT_URL": "http://vault.test:8200", "VAULT_AUTH_METHOD": "cert"}, {})
    with pytest.raises(VaultConfigError, match="VAULT_AUTH_METHOD must be one of token, approle, jwt, kubernetes"):
        authenticator_from_settings(settings)
    monkeypatch.setitem(AUTH_METHODS, "cert", _CertAuth)
    client = VaultClient(settings=settings)
    client.keeper.start()
    assert (client.keeper.method, client.token, client.keeper.stats.logins) == ("cert", "s.from-cert", 1)
    client.keeper.close(revoke=False)


def test_authenticators_show_no_credential_in_repr() -> None:
    authenticators = [
        TokenAuth("hvs.token-value-123"),
        AppRoleAuth("role-id-123", secret_id="secret-id-456"),
        AppRoleAuth("role-id-123", wrapped_secret_id="hvs.wrapping-789", role_name="ci"),
        JWTAuth("ci", jwt="eyJ.jwt-value.sig"),
    ]
    text = " ".join(repr(a) + a.describe() for a in authenticators)
    assert_no_leak(text, ["hvs.token-value-123", "role-id-123", "secret-id-456", "hvs.wrapping-789", "jwt-value"])
    settings = VaultSettings.load({"VAULT_ROLE_ID": "role-id-123", "VAULT_SECRET_ID": "secret-id-456"}, {})
    assert "secret-id-456" not in repr(settings)


# -- token, token file, ~/.vault-token ---------------------------------------------------


def test_vault_token_is_used_as_given_and_removed_from_app_config(
    auth_server: OpenBaoServer, root: hvac.Client
) -> None:
    token = app_token(root)
    app = init(root_config(auth_server, VAULT_TOKEN=token))
    client = client_of(app)
    assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
    assert "VAULT_TOKEN" not in app.config
    assert app.extensions["vault"].settings.token is None
    assert client.keeper.method == "token"
    assert client.keeper.stats.logins == 0  # a given token is used, not a login


def test_token_file_is_read_again_when_the_agent_rewrites_it(
    auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path
) -> None:
    sink = tmp_path / "agent-token"
    first, second = app_token(root), app_token(root)
    sink.write_text(first + "\n")
    app = init(root_config(auth_server, VAULT_TOKEN_FILE=str(sink)))
    client = client_of(app)
    assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
    assert client.token == first
    sink.write_text(second + "\n")  # the Agent writes a new token...
    root.auth.token.revoke(first)  # ...and the old one goes away

    def reads_with_the_new_token() -> bool:
        assert client.get_secret("flask", "secret_key", use_cache=False) == FLASK_SECRET["secret_key"]
        return client.token == second

    wait_for(reads_with_the_new_token, 5, "the new token in the sink file was not picked up")


def test_token_file_revoked_without_a_new_token_waits_for_the_agent_then_gives_a_clear_auth_error(
    auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path
) -> None:
    sink = tmp_path / "agent-token"
    token = app_token(root)
    sink.write_text(token)
    client = client_of(init(root_config(auth_server, VAULT_TOKEN_FILE=str(sink))))
    clock = FakeClock()
    client.keeper.clock = clock
    root.auth.token.revoke(token)
    # While its Agent may still replace the token, it is an outage (cached secrets are served)...
    with pytest.raises(VaultUnavailableError, match="waiting for the Agent") as waiting:
        client.get_secret("flask", use_cache=False)
    clock.advance(86400)  # ... and past the token's TTL (plus the Agent's slack), a refusal
    with pytest.raises(VaultAuthError, match="Agent") as excinfo:
        client.get_secret("flask", use_cache=False)
    assert token not in str(excinfo.value) + str(waiting.value)


def test_cli_token_file_in_home_is_used_when_nothing_else_is_set(
    auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "cli-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    token = app_token(root)
    (home / ".vault-token").write_text(token)
    app = init(root_config(auth_server))
    assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
    assert client_of(app).token == token


# -- AppRole -----------------------------------------------------------------------------


def test_approle_login_fills_config_and_keeps_no_credential_in_app_config(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root, token_ttl="60s", token_max_ttl="120s")
    app = init(role.config(auth_server))
    state = app.extensions["vault"]
    assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
    for key in ("VAULT_SECRET_ID", "VAULT_WRAPPED_SECRET_ID", "VAULT_JWT", "VAULT_TOKEN"):
        assert key not in app.config
    assert state.settings.secret_id is None
    assert state.client.keeper.method == "approle"
    assert state.client.keeper.stats.logins == 1
    assert len(flask_vault_logs.audit("login")) == 1
    health = state.client.health_check()
    assert health["auth_method"] == "approle"
    assert health["authenticated"] is True
    assert health["renewable"] is True
    assert 0 < health["token_ttl"] <= 60
    assert APP_POLICY in health["policies"]
    status = app.test_cli_runner().invoke(args=["vault", "status"])
    assert "method=approle" in status.output
    assert "renewable=True" in status.output
    body = app.test_client().get("/health/vault").get_data(as_text=True)
    text = json.dumps(health) + status.output + body + flask_vault_logs.text()
    assert_no_leak(text, [role.secret_id, state.client.token or "missing"])


def test_approle_secret_id_file_is_read_at_each_login(
    auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path
) -> None:
    role = make_approle(root, token_ttl="60s", secret_id_num_uses=1)
    secret_file = tmp_path / "secret-id"
    secret_file.write_text(role.secret_id)
    config = role.config(auth_server, VAULT_SECRET_ID_FILE=str(secret_file))
    del config["VAULT_SECRET_ID"]
    app = init(config)
    client = client_of(app)
    assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
    # The single-use secret_id is spent; a deployment tool writes a fresh one into the file.
    secret_file.write_text(root.auth.approle.generate_secret_id(role.name)["data"]["secret_id"])
    root.auth.token.revoke(client.token)
    assert client.get_secret("flask", "secret_key", use_cache=False) == FLASK_SECRET["secret_key"]
    assert client.keeper.stats.logins == 2


def test_bad_secret_id_is_an_auth_error_naming_the_login_path_not_the_secret(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root)
    wrong = "0d8f1c5e-2b7a-4c3d-9e8f-0123456789ab"
    with pytest.raises(VaultAuthError) as excinfo:
        init(role.config(auth_server, VAULT_SECRET_ID=wrong))
    message = str(excinfo.value)
    assert "auth/approle/login" in message
    assert "SECRET_KEY" in message
    assert_no_leak(message + flask_vault_logs.text(), [wrong, role.role_id])


# -- wrapped secret_id -------------------------------------------------------------------


def wrapped_config(server: OpenBaoServer, role: Any, wrapping_token: str, **extra: Any) -> dict[str, Any]:
    config = role.config(server, VAULT_WRAPPED_SECRET_ID=wrapping_token, **extra)
    del config["VAULT_SECRET_ID"]
    return config


def test_wrapped_secret_id_is_unwrapped_once_and_logs_in_again_later(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root, token_ttl="60s")
    wrapping = wrapped_secret_id(auth_server, f"auth/approle/role/{role.name}/secret-id")
    app = init(wrapped_config(auth_server, role, wrapping, VAULT_ROLE_NAME=role.name))
    client = client_of(app)
    assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
    assert "VAULT_WRAPPED_SECRET_ID" not in app.config
    assert len(flask_vault_logs.audit("unwrap")) == 1
    # The wrapping token is spent: nobody can unwrap it again.
    lookup = requests.post(f"{auth_server.url}/v1/sys/wrapping/lookup", json={"token": wrapping}, timeout=5)
    assert lookup.status_code == 400
    # A later login uses the secret_id kept in memory, without another unwrap.
    root.auth.token.revoke(client.token)
    assert client.get_secret("flask", "secret_key", use_cache=False) == FLASK_SECRET["secret_key"]
    assert client.keeper.stats.logins == 2
    assert len(flask_vault_logs.audit("unwrap")) == 1
    assert_no_leak(flask_vault_logs.text(), [wrapping])


def assert_refused_without_login(config: dict[str, Any], logs: LogCapture, match: str) -> VaultAuthError:
    with pytest.raises(VaultAuthError, match=match) as excinfo:
        init(config)
    assert logs.audit("login") == []
    assert logs.audit("login", "VaultError") == []
    return excinfo.value


def test_reused_wrapping_token_is_refused_with_no_login(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root)
    wrapping = wrapped_secret_id(auth_server, f"auth/approle/role/{role.name}/secret-id")
    root.sys.unwrap(wrapping)  # someone got there first
    error = assert_refused_without_login(
        wrapped_config(auth_server, role, wrapping), flask_vault_logs, "already unwrapped"
    )
    assert_no_leak(str(error) + flask_vault_logs.text(), [wrapping])


def test_expired_wrapping_token_is_refused_with_no_login(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root)
    wrapping = wrapped_secret_id(auth_server, f"auth/approle/role/{role.name}/secret-id", ttl="1s")

    def expired() -> bool:
        answer = requests.post(f"{auth_server.url}/v1/sys/wrapping/lookup", json={"token": wrapping}, timeout=5)
        return answer.status_code == 400

    wait_for(expired, 10, "the wrapping token did not expire", interval=0.2)
    assert_refused_without_login(wrapped_config(auth_server, role, wrapping), flask_vault_logs, "expired")


def test_wrapping_token_not_from_an_approle_secret_id_endpoint_is_refused_and_left_intact(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root)
    wrapping = wrapped_secret_id(auth_server, "sys/wrapping/wrap")
    error = assert_refused_without_login(
        wrapped_config(auth_server, role, wrapping), flask_vault_logs, "sys/wrapping/wrap"
    )
    assert "auth/approle/role/<name>/secret-id" in str(error)
    assert flask_vault_logs.audit("unwrap") == []
    lookup = requests.post(f"{auth_server.url}/v1/sys/wrapping/lookup", json={"token": wrapping}, timeout=5)
    assert lookup.status_code == 200  # not unwrapped: the operator can still inspect it


def test_wrapping_token_of_another_role_is_refused_when_vault_role_name_is_set(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role, other = make_approle(root), make_approle(root)
    wrapping = wrapped_secret_id(auth_server, f"auth/approle/role/{other.name}/secret-id")
    config = wrapped_config(auth_server, role, wrapping, VAULT_ROLE_NAME=role.name)
    assert_refused_without_login(config, flask_vault_logs, f"auth/approle/role/{other.name}/secret-id")


def test_wrapping_token_from_another_approle_mount_is_refused(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root)
    wrapping = wrapped_secret_id(auth_server, f"auth/approle/role/{role.name}/secret-id")
    config = wrapped_config(auth_server, role, wrapping, VAULT_APPROLE_MOUNT="approle-ci")
    assert_refused_without_login(config, flask_vault_logs, "approle-ci")


def test_refused_wrapping_token_stays_refused_without_asking_vault_again(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root)
    wrapping = wrapped_secret_id(auth_server, "sys/wrapping/wrap")
    config = wrapped_config(auth_server, role, wrapping, VAULT_FAIL_FAST=False)
    app = init(config)  # starts without the secrets, as asked
    lookups = len(flask_vault_logs.audit("lookup"))
    for _ in range(3):
        with pytest.raises(VaultAuthError):
            client_of(app).get_secret("flask", use_cache=False)
    assert len(flask_vault_logs.audit("lookup")) == lookups
    assert flask_vault_logs.audit("login") == []


# -- JWT -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwt_key(root: hvac.Client) -> rsa.RSAPrivateKey:
    """OpenBao's jwt auth method trusting a key pair made here, with a role ``ci``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    root.sys.enable_auth_method("jwt")
    root.adapter.post(
        "/v1/auth/jwt/config", json={"jwt_validation_pubkeys": [public.decode()], "bound_issuer": JWT_ISSUER}
    )
    root.adapter.post(
        "/v1/auth/jwt/role/ci",
        json={
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [JWT_AUDIENCE],
            "bound_claims": {"project": "store-erp"},
            "token_policies": [APP_POLICY],
            "token_ttl": "60s",
        },
    )
    return key


def make_jwt(key: rsa.RSAPrivateKey, *, lifetime: int = 300, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": JWT_ISSUER, "aud": JWT_AUDIENCE, "sub": "ci-job-42", "project": "store-erp"}
    payload.update(iat=now - 5, nbf=now - 5, exp=now + lifetime)
    payload.update(claims)
    return pyjwt.encode(payload, key, algorithm="RS256")


def jwt_config(server: OpenBaoServer, **extra: Any) -> dict[str, Any]:
    return root_config(server, VAULT_JWT_ROLE="ci", **extra)


def test_jwt_login_with_a_token_signed_by_the_configured_key(
    auth_server: OpenBaoServer, jwt_key: rsa.RSAPrivateKey, flask_vault_logs: LogCapture
) -> None:
    token = make_jwt(jwt_key)
    app = init(jwt_config(auth_server, VAULT_JWT=token))
    client = client_of(app)
    assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
    assert "VAULT_JWT" not in app.config
    assert client.keeper.method == "jwt"
    assert client.keeper.stats.logins == 1
    assert APP_POLICY in client.health_check()["policies"]
    assert_no_leak(flask_vault_logs.text(), [token])


def test_jwt_file_is_read_again_at_each_login(
    auth_server: OpenBaoServer, jwt_key: rsa.RSAPrivateKey, root: hvac.Client, tmp_path: Path
) -> None:
    jwt_file = tmp_path / "ci-oidc-token"
    jwt_file.write_text(make_jwt(jwt_key, sub="job-1"))
    client = client_of(init(jwt_config(auth_server, VAULT_JWT_FILE=str(jwt_file))))
    jwt_file.write_text(make_jwt(jwt_key, sub="job-2"))  # CI refreshed its OIDC token
    root.auth.token.revoke(client.token)
    assert client.get_secret("flask", "secret_key", use_cache=False) == FLASK_SECRET["secret_key"]
    assert client.lookup_token()["meta"]["role"] == "ci"
    assert client.keeper.stats.logins == 2


@pytest.mark.parametrize(
    ("claims", "why"),
    [({"lifetime": -60}, "expired"), ({"aud": "someone-else"}, "audience"), ({"project": "other"}, "claim")],
)
def test_jwt_refused_by_vault_is_an_auth_error_without_the_jwt(
    auth_server: OpenBaoServer,
    jwt_key: rsa.RSAPrivateKey,
    flask_vault_logs: LogCapture,
    claims: dict[str, Any],
    why: str,
) -> None:
    token = make_jwt(jwt_key, **claims)
    with pytest.raises(VaultAuthError, match="auth/jwt/login") as excinfo:
        init(jwt_config(auth_server, VAULT_JWT=token))
    assert_no_leak(str(excinfo.value) + flask_vault_logs.text(), [token])


def test_jwt_signed_by_another_key_is_refused(auth_server: OpenBaoServer, jwt_key: rsa.RSAPrivateKey) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(VaultAuthError, match="refused"):
        init(jwt_config(auth_server, VAULT_JWT=make_jwt(stranger)))


# -- Kubernetes (requests_mock: no Kubernetes API in these tests) ---------------------------

MOCK_URL = "http://vault.test:8200"


def mock_kv(mocked: rm.Mocker) -> None:
    mocked.get(f"{MOCK_URL}/v1/sys/internal/ui/mounts/secret", json={"data": {"options": {"version": "2"}}})
    for name, data in (("flask", FLASK_SECRET), ("database", {"url": "sqlite://"})):
        mocked.get(
            f"{MOCK_URL}/v1/secret/data/{PREFIX}/{ENVIRONMENT}/{name}",
            json={"data": {"data": data, "metadata": {"version": 1}}},
        )


def test_kubernetes_login_sends_the_service_account_token_and_uses_the_answer(tmp_path: Path) -> None:
    sa_token = "eyJhbGciOiJSUzI1NiJ9.service-account.signature"
    token_file = tmp_path / "token"
    token_file.write_text(sa_token + "\n")
    config = {
        "VAULT_URL": MOCK_URL,
        "VAULT_K8S_ROLE": "store-erp",
        "VAULT_K8S_TOKEN_FILE": str(token_file),
        "VAULT_PATH_PREFIX": PREFIX,
        "VAULT_ENVIRONMENT": ENVIRONMENT,
        "VAULT_MAX_RETRIES": 0,
        "VAULT_STARTUP_TIMEOUT": 0,
    }
    with rm.Mocker() as mocked:
        login = mocked.post(
            f"{MOCK_URL}/v1/auth/kubernetes/login",
            json={
                "auth": {
                    "client_token": "s.k8s-issued-token",
                    "accessor": "k8s-accessor",
                    "lease_duration": 3600,
                    "renewable": True,
                    "policies": ["default", APP_POLICY],
                }
            },
        )
        mock_kv(mocked)
        app = init(config)
        client = client_of(app)
        assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
        assert login.call_count == 1
        assert login.last_request.json() == {"role": "store-erp", "jwt": sa_token}
        assert "X-Vault-Token" not in login.last_request.headers
        reads = [r for r in mocked.request_history if "/secret/data/" in r.url]
        assert reads and all(r.headers["X-Vault-Token"] == "s.k8s-issued-token" for r in reads)
        assert client.keeper.method == "kubernetes"
        assert client.keeper.status()["policies"] == ["default", APP_POLICY]
        client.keeper.close(revoke=False)


def test_kubernetes_login_refused_is_an_auth_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sa-token-value")
    settings = VaultSettings.load(
        {"VAULT_URL": MOCK_URL, "VAULT_K8S_ROLE": "store-erp", "VAULT_K8S_TOKEN_FILE": str(token_file)}, {}
    )
    with rm.Mocker() as mocked:
        mocked.post(f"{MOCK_URL}/v1/auth/kubernetes/login", status_code=403, json={"errors": ["permission denied"]})
        client = VaultClient(settings=settings)
        with pytest.raises(VaultAuthError, match="auth/kubernetes/login") as excinfo:
            client.keeper.start()
    assert "sa-token-value" not in str(excinfo.value)


def test_kubernetes_missing_token_file_says_which_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    settings = VaultSettings.load(
        {"VAULT_URL": MOCK_URL, "VAULT_K8S_ROLE": "r", "VAULT_K8S_TOKEN_FILE": str(missing)}, {}
    )
    with rm.Mocker() as mocked, pytest.raises(VaultAuthError, match="VAULT_K8S_TOKEN_FILE"):
        VaultClient(settings=settings).keeper.start()
    assert mocked.call_count == 0


def test_plain_client_from_environment_logs_in_with_approle_on_first_read(
    auth_server: OpenBaoServer, root: hvac.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = make_approle(root, token_ttl="60s")
    for key, value in role.config(auth_server).items():
        if key.startswith("VAULT_"):
            monkeypatch.setenv(key, str(value))
    client = VaultClient()
    assert client.token is None
    assert client.get_secret("flask", "secret_key") == FLASK_SECRET["secret_key"]
    assert client.keeper.stats.logins == 1
