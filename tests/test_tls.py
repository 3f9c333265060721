"""TLS against a real OpenBao dev server with a generated CA (``bao server -dev -dev-tls``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_vault import VaultClient, VaultUnavailableError
from flask_vault.devserver import OpenBaoServer
from flask_vault.settings import VaultSettings


@pytest.fixture(scope="module")
def tls_server() -> Iterator[OpenBaoServer]:
    with OpenBaoServer(tls=True) as server:
        server.root_client().secrets.kv.v2.create_or_update_secret("app/development/flask", {"secret_key": "k"})
        yield server


def client_for(server: OpenBaoServer, **config: object) -> VaultClient:
    settings = VaultSettings.load(
        {"VAULT_URL": server.url, "VAULT_TOKEN": server.root_token, "VAULT_PATH_PREFIX": "app", **config}, {}
    )
    return VaultClient(settings=settings)


def test_an_unknown_certificate_is_refused_with_a_hint_about_vault_cacert(tls_server: OpenBaoServer) -> None:
    client = client_for(tls_server)
    with pytest.raises(VaultUnavailableError, match=r"TLS verification failed.*VAULT_CACERT"):
        client.get_secret("flask", "secret_key")


def test_vault_cacert_verifies_the_server(tls_server: OpenBaoServer) -> None:
    assert client_for(tls_server, VAULT_CACERT=tls_server.ca_cert).get_secret("flask", "secret_key") == "k"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_vault_skip_verify_turns_verification_off(tls_server: OpenBaoServer) -> None:
    client = client_for(tls_server, VAULT_SKIP_VERIFY="true")
    assert client.get_secret("flask", "secret_key") == "k"


def test_the_verify_argument_reaches_the_http_session(tls_server: OpenBaoServer) -> None:
    client = VaultClient(tls_server.url, tls_server.root_token, verify=tls_server.ca_cert, path_prefix="app")
    assert client.get_secret("flask", "secret_key") == "k"
