"""TLS against a real OpenBao server whose listeners use certificates made here.

One non-dev server (``bao server -config``) with four listeners: plain HTTP (for set-up,
and for a https:// URL that reaches it), one that requires a client certificate (mutual
TLS), one whose certificate names only ``vault.test``, and one with an expired
certificate. Every failure raises :class:`VaultTLSError` at once, saying what failed and
naming the URL and the CA in use.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from flask_vault import FlaskVault, VaultClient, VaultConfigError, VaultTLSError
from flask_vault.devserver import OpenBaoServer, PersistentOpenBaoServer, free_port_pair
from flask_vault.settings import VaultSettings
from tests.tls_support import CA, Issued, tls_listener

SECRET = {"secret_key": "tls-secret-value-4c2e9a"}


@dataclass
class Listeners:
    server: PersistentOpenBaoServer
    ca: CA
    client: Issued
    rogue_client: Issued
    mtls: str
    named: str
    expired: str

    @property
    def plain(self) -> str:
        return self.server.url.replace("http://", "https://")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def listeners(pki: Path) -> Iterator[Listeners]:
    server_ca, client_ca = CA(pki, "server-ca"), CA(pki, "client-ca")
    good = server_ca.issue("server", dns=("localhost",), ips=("127.0.0.1",))
    named = server_ca.issue("named", dns=("vault.test",))
    expired = server_ca.issue("expired", ips=("127.0.0.1",), expired=True)
    ports = [free_port_pair() for _ in range(3)]
    extra = (
        tls_listener(ports[0], good, client_ca=client_ca.cert)
        + tls_listener(ports[1], named)
        + tls_listener(ports[2], expired)
    )
    server = PersistentOpenBaoServer(extra_config=extra).start()
    try:
        server.root_client().secrets.kv.v2.create_or_update_secret("app/development/flask", SECRET)
        yield Listeners(
            server,
            server_ca,
            client=client_ca.issue("client", client=True),
            rogue_client=server_ca.issue("rogue-client", client=True),
            mtls=f"https://127.0.0.1:{ports[0]}",
            named=f"https://127.0.0.1:{ports[1]}",
            expired=f"https://127.0.0.1:{ports[2]}",
        )
    finally:
        server.stop()


def client_at(url: str, listeners: Listeners, **config: Any) -> VaultClient:
    settings = VaultSettings.load(
        {
            "VAULT_URL": url,
            "VAULT_TOKEN": listeners.server.root_token,
            "VAULT_PATH_PREFIX": "app",
            "VAULT_MAX_RETRIES": 3,
            **config,
        },
        {},
    )
    return VaultClient(settings=settings)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every HTTP request the test's own thread sends (the real send still happens): proves a
    failure is not retried. Background threads (a keeper's lookup of another test's token)
    are not counted."""
    sent: list[str] = []
    original = requests.Session.send
    test_thread = threading.get_ident()

    def counting(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        if threading.get_ident() == test_thread:
            sent.append(str(request.url))
        return original(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", counting)
    return sent


def refused(client: VaultClient) -> VaultTLSError:
    with pytest.raises(VaultTLSError) as caught:
        client.get_secret("flask", "secret_key", use_cache=False)
    return caught.value


# -- mutual TLS ---------------------------------------------------------------------------------------


def test_a_listener_that_requires_a_client_certificate_refuses_a_client_without_one(
    listeners: Listeners, sends: list[str]
) -> None:
    client = client_at(listeners.mtls, listeners, VAULT_CACERT=listeners.ca.cert)
    error = refused(client)
    assert error.reason == "client-certificate"
    assert "requires a client certificate and none was sent" in error.message
    assert listeners.mtls in error.message and f"CA in use: VAULT_CACERT {listeners.ca.cert}" in error.message
    assert "VAULT_CLIENT_CERT" in error.message
    assert len(sends) == 1  # not retried as an outage


def test_the_right_client_certificate_gets_through(listeners: Listeners) -> None:
    client = client_at(
        listeners.mtls,
        listeners,
        VAULT_CACERT=listeners.ca.cert,
        VAULT_CLIENT_CERT=listeners.client.cert,
        VAULT_CLIENT_KEY=listeners.client.key,
    )
    assert client.get_secret("flask", "secret_key") == SECRET["secret_key"]
    assert client.health_check()["authenticated"] is True


def test_a_client_certificate_from_another_ca_is_refused_by_name(listeners: Listeners) -> None:
    client = client_at(
        listeners.mtls,
        listeners,
        VAULT_CACERT=listeners.ca.cert,
        VAULT_CLIENT_CERT=listeners.rogue_client.cert,
        VAULT_CLIENT_KEY=listeners.rogue_client.key,
    )
    error = refused(client)
    assert error.reason == "client-certificate"
    assert f"refused the client certificate VAULT_CLIENT_CERT {listeners.rogue_client.cert}" in error.message


# -- what failed, said as such ---------------------------------------------------------------------------


def test_a_host_name_mismatch_is_named_and_vault_tls_server_name_fixes_it(
    listeners: Listeners, sends: list[str]
) -> None:
    error = refused(client_at(listeners.named, listeners, VAULT_CACERT=listeners.ca.cert))
    assert error.reason == "hostname-mismatch"
    assert "host-name mismatch" in error.message and "'127.0.0.1'" in error.message
    assert "VAULT_TLS_SERVER_NAME" in error.message and listeners.named in error.message
    assert len(sends) == 1
    named = client_at(listeners.named, listeners, VAULT_CACERT=listeners.ca.cert, VAULT_TLS_SERVER_NAME="vault.test")
    assert named.get_secret("flask", "secret_key") == SECRET["secret_key"]


def test_an_expired_certificate_is_named(listeners: Listeners) -> None:
    error = refused(client_at(listeners.expired, listeners, VAULT_CACERT=listeners.ca.cert))
    assert error.reason == "expired"
    assert "expired certificate" in error.message and listeners.expired in error.message
    assert listeners.ca.cert in error.message


def test_an_unknown_ca_names_the_bundle_in_use(listeners: Listeners) -> None:
    error = refused(client_at(listeners.named, listeners, VAULT_TLS_SERVER_NAME="vault.test"))
    assert error.reason == "unknown-ca"
    assert "unknown CA" in error.message and "CA in use: the default CA bundle" in error.message
    assert "Set VAULT_CACERT" in error.message


def test_https_to_a_plain_http_listener_says_the_server_does_not_speak_tls(listeners: Listeners) -> None:
    error = refused(client_at(listeners.plain, listeners, VAULT_CACERT=listeners.ca.cert))
    assert error.reason == "not-tls"
    assert "does not speak TLS" in error.message and listeners.plain in error.message
    assert "Set VAULT_CACERT" not in error.message


def test_a_ca_directory_is_read_like_the_vault_cli_reads_it(listeners: Listeners, tmp_path: Path) -> None:
    directory = tmp_path / "cas"
    directory.mkdir()
    (directory / "our-ca.pem").write_text(Path(listeners.ca.cert).read_text())  # no c_rehash names
    (directory / "README").write_text("not a certificate\n")
    client = client_at(listeners.named, listeners, VAULT_CAPATH=str(directory), VAULT_TLS_SERVER_NAME="vault.test")
    assert client.get_secret("flask", "secret_key") == SECRET["secret_key"]
    error = refused(client_at(listeners.expired, listeners, VAULT_CAPATH=str(directory)))
    assert f"CA in use: VAULT_CAPATH {directory}" in error.message


def test_start_up_does_not_wait_out_a_certificate_problem(listeners: Listeners, sends: list[str]) -> None:
    app = Flask("tls_startup")
    app.config.update(
        VAULT_URL=listeners.expired,
        VAULT_TOKEN=listeners.server.root_token,
        VAULT_CACERT=listeners.ca.cert,
        VAULT_PATH_PREFIX="app",
        VAULT_STARTUP_TIMEOUT=60,
        VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"},
        VAULT_FALLBACK_ENV=False,
    )
    with pytest.raises(VaultTLSError, match="expired certificate") as caught:
        FlaskVault(app)
    assert "VAULT_STALE_MAX_AGE" not in str(caught.value)
    assert len(sends) <= 3  # the login's lookup and one read; no start-up retries


def test_the_health_endpoint_says_what_failed(listeners: Listeners) -> None:
    client = client_at(listeners.named, listeners, VAULT_CACERT=listeners.ca.cert)
    report = client.health_check()
    assert report["reachable"] is False
    assert "host-name mismatch" in report["error"]


# -- the dev server's own TLS (bao server -dev -dev-tls) --------------------------------------------------


@pytest.fixture(scope="module")
def dev_tls() -> Iterator[OpenBaoServer]:
    with OpenBaoServer(tls=True) as server:
        server.root_client().secrets.kv.v2.create_or_update_secret("app/development/flask", {"secret_key": "k"})
        yield server


def dev_client(server: OpenBaoServer, **config: object) -> VaultClient:
    settings = VaultSettings.load(
        {"VAULT_URL": server.url, "VAULT_TOKEN": server.root_token, "VAULT_PATH_PREFIX": "app", **config}, {}
    )
    return VaultClient(settings=settings)


def test_vault_cacert_verifies_the_server(dev_tls: OpenBaoServer) -> None:
    assert dev_client(dev_tls, VAULT_CACERT=dev_tls.ca_cert).get_secret("flask", "secret_key") == "k"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_vault_skip_verify_turns_verification_off_with_one_warning(
    dev_tls: OpenBaoServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_vault"):
        client = dev_client(dev_tls, VAULT_SKIP_VERIFY="true")
        assert client.get_secret("flask", "secret_key") == "k"
        client.get_secret("flask", "secret_key", use_cache=False)
    warnings = [r.getMessage() for r in caplog.records if "Insecure connection to Vault" in r.getMessage()]
    assert len(warnings) == 1 and "VAULT_SKIP_VERIFY=true" in warnings[0]


def test_the_verify_argument_reaches_the_http_session(dev_tls: OpenBaoServer) -> None:
    client = VaultClient(dev_tls.url, dev_tls.root_token, verify=dev_tls.ca_cert, path_prefix="app")
    assert client.get_secret("flask", "secret_key") == "k"


# -- settings that contradict each other, and insecure ones -------------------------------------------


@pytest.fixture
def ca_file(tmp_path: Path) -> str:
    return CA(tmp_path, "some-ca").cert


def test_skip_verify_with_a_ca_setting_is_a_config_error(ca_file: str, tmp_path: Path) -> None:
    for key, value in (("VAULT_CACERT", ca_file), ("VAULT_CAPATH", str(tmp_path))):
        with pytest.raises(VaultConfigError, match="VAULT_SKIP_VERIFY=true turns off the verification") as caught:
            VaultSettings.load({"VAULT_SKIP_VERIFY": "true", key: value}, {})
        assert caught.value.key == "VAULT_SKIP_VERIFY" and key in str(caught.value)


def test_a_missing_ca_file_is_a_config_error_even_with_skip_verify() -> None:
    with pytest.raises(VaultConfigError, match="VAULT_CACERT"):
        VaultSettings.load({"VAULT_SKIP_VERIFY": "true", "VAULT_CACERT": "/nonexistent/ca.pem"}, {})


def test_cacert_and_capath_together_and_half_a_client_certificate_are_config_errors(
    ca_file: str, tmp_path: Path
) -> None:
    with pytest.raises(VaultConfigError, match="one of VAULT_CACERT"):
        VaultSettings.load({"VAULT_CACERT": ca_file, "VAULT_CAPATH": str(tmp_path)}, {})
    with pytest.raises(VaultConfigError, match="VAULT_CLIENT_KEY is not"):
        VaultSettings.load({"VAULT_CLIENT_CERT": ca_file}, {})


def test_a_client_key_that_does_not_match_is_refused_when_the_client_is_made(tmp_path: Path) -> None:
    ca = CA(tmp_path, "ca")
    one, other = ca.issue("one", client=True), ca.issue("other", client=True)
    settings = VaultSettings.load({"VAULT_CLIENT_CERT": one.cert, "VAULT_CLIENT_KEY": other.key}, {})
    with pytest.raises(VaultConfigError, match=r"VAULT_CLIENT_CERT .* do not load"):
        VaultClient(settings=settings)


@pytest.mark.parametrize(
    ("config", "risk"),
    [
        ({"VAULT_SKIP_VERIFY": "true"}, "VAULT_SKIP_VERIFY=true"),
        ({"VAULT_URL": "http://vault.internal:8200"}, "plain http://"),
    ],
)
def test_insecure_settings_warn_once_and_are_refused_in_production(
    config: dict[str, str], risk: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_vault"):
        VaultSettings.load(config, {})
    assert [r.getMessage() for r in caplog.records if risk in r.getMessage()]
    with pytest.raises(VaultConfigError, match="VAULT_ENVIRONMENT is 'production'") as caught:
        VaultSettings.load({**config, "VAULT_ENVIRONMENT": "production"}, {})
    assert "VAULT_ALLOW_INSECURE=true" in str(caught.value)
    allowed = VaultSettings.load({**config, "VAULT_ENVIRONMENT": "production", "VAULT_ALLOW_INSECURE": "true"}, {})
    assert allowed.allow_insecure is True


@pytest.mark.parametrize("url", ["http://127.0.0.1:8200", "http://localhost:8200", "http://[::1]:8200"])
def test_plain_http_to_this_machine_is_fine_even_in_production(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_vault"):
        VaultSettings.load({"VAULT_URL": url, "VAULT_ENVIRONMENT": "production"}, {})
    assert not [r for r in caplog.records if "Insecure" in r.getMessage()]
