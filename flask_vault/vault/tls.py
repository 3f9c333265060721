"""TLS to Vault with the Vault CLI's settings, and a TLS failure told for what it is.

Settings (names as the ``vault``/``bao`` CLI reads them):

* ``VAULT_CACERT``: a PEM file of the CA(s) to trust, and only those;
* ``VAULT_CAPATH``: a directory of PEM CA certificates, every one of them read (no
  ``c_rehash`` needed, as with the CLI);
* ``VAULT_CLIENT_CERT`` + ``VAULT_CLIENT_KEY``: the client certificate for a listener with
  ``tls_require_and_verify_client_cert``;
* ``VAULT_TLS_SERVER_NAME``: the name sent as SNI and checked against the certificate,
  when ``VAULT_URL`` names the server otherwise (an IP address, a load balancer);
* ``VAULT_SKIP_VERIFY``: no verification at all (see :mod:`flask_vault.settings` for the
  warning and the production refusal).

Without any of them ``requests`` verifies against its default bundle (certifi), as
before. With a directory, a client certificate or a server name, the session gets a
:class:`TLSAdapter` holding one :class:`ssl.SSLContext` built from the settings.

:func:`failure` turns an SSL error into a :class:`~flask_vault.errors.VaultTLSError` that
says what failed (unknown CA, host-name mismatch, expired certificate, a client
certificate required or refused, a server that does not speak TLS), names the URL and
the CA in use, and says what to change.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from flask_vault.display import safe_text
from flask_vault.errors import VaultConfigError, VaultTLSError
from flask_vault.settings import VaultSettings

#: OpenSSL's X509_V_ERR_* codes, by what they mean to an operator.
_UNKNOWN_CA_CODES = frozenset({2, 18, 19, 20, 21, 27})
_EXPIRED, _NOT_YET_VALID = 10, 9
_HOSTNAME_CODES = frozenset({62, 64})
#: ssl.SSLError reasons of a peer that answered in something other than TLS.
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG"}
)
#: Alerts a server sends when it wants a client certificate it did not get, or does not trust it.
_CLIENT_CERT_REASONS = (
    "CERTIFICATE_REQUIRED",
    "ALERT_BAD_CERTIFICATE",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_HANDSHAKE_FAILURE",
    "ALERT_ACCESS_DENIED",
)


@dataclass(frozen=True)
class TLSFacts:
    """What an error message says about this client's TLS: the CA in use, the client certificate, the name."""

    ca: str
    client_cert: str | None = None
    server_name: str | None = None

    @classmethod
    def of(cls, settings: VaultSettings) -> TLSFacts:
        return cls(describe_ca(settings), settings.client_cert, settings.tls_server_name)


def describe_ca(settings: VaultSettings) -> str:
    """The CA a connection is verified against, in words (for messages)."""
    if settings.verify is False:
        return "none (VAULT_SKIP_VERIFY=true: nothing is verified)"
    if settings.capath:
        return f"VAULT_CAPATH {settings.capath}"
    if settings.cacert:
        return f"VAULT_CACERT {settings.cacert}"
    if isinstance(settings.verify, str):
        return f"the CA bundle {settings.verify}"
    return f"the default CA bundle ({DEFAULT_CA_BUNDLE_PATH})"


def needs_adapter(settings: VaultSettings) -> bool:
    """True when plain ``requests`` verification is not enough: a CA directory, a client certificate, a name."""
    return bool(settings.capath or settings.client_cert or settings.tls_server_name)


def build_context(settings: VaultSettings) -> ssl.SSLContext:
    """The SSL context the settings describe; VaultConfigError naming the setting whose file will not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname checking and CERT_REQUIRED; no CA loaded yet
    if settings.verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif settings.capath:
        _load_directory(context, settings.capath)
    else:
        key, cafile = (
            ("VAULT_CACERT", settings.verify) if isinstance(settings.verify, str) else ("", DEFAULT_CA_BUNDLE_PATH)
        )
        _load(context.load_verify_locations, key or "the default CA bundle", cafile)
    if settings.client_cert and settings.client_key:
        try:
            context.load_cert_chain(settings.client_cert, settings.client_key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise VaultConfigError(
                f"VAULT_CLIENT_CERT {settings.client_cert} and VAULT_CLIENT_KEY {settings.client_key} do not load"
                f" as a PEM certificate and its unencrypted private key ({_reason(exc)}).",
                key="VAULT_CLIENT_CERT",
            ) from None
    return context


def _load(loader: Any, key: str, cafile: str) -> None:
    try:
        loader(cafile=cafile)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise VaultConfigError(
            f"{key} {cafile} does not load as PEM CA certificates ({_reason(exc)}).", key=key
        ) from None


def _load_directory(context: ssl.SSLContext, directory: str) -> None:
    """Every PEM certificate file in ``directory``, as the Vault CLI reads VAULT_CAPATH."""
    loaded = 0
    for path in sorted(Path(directory).iterdir()):
        try:
            text = path.read_text(encoding="ascii") if path.is_file() else ""
        except (OSError, UnicodeDecodeError):
            continue  # not a PEM file
        if "-----BEGIN CERTIFICATE-----" not in text:
            continue
        try:
            context.load_verify_locations(cadata=text)
        except (ssl.SSLError, ValueError) as exc:
            raise VaultConfigError(
                f"VAULT_CAPATH file {path} does not load as PEM CA certificates ({_reason(exc)}).", key="VAULT_CAPATH"
            ) from None
        loaded += 1
    if not loaded:
        raise VaultConfigError(f"VAULT_CAPATH {directory} holds no PEM certificate file.", key="VAULT_CAPATH")


class TLSAdapter(HTTPAdapter):
    """An HTTPS transport adapter whose one SSL context holds the CAs and the client certificate.

    ``server_name`` (``VAULT_TLS_SERVER_NAME``) is sent as SNI and checked against the
    certificate instead of the host in the URL. The per-request ``verify`` and ``cert``
    that hvac passes are not used: the context decides.
    """

    def __init__(self, context: ssl.SSLContext, server_name: str | None = None) -> None:
        self._context = context
        self._server_name = server_name
        super().__init__()

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        pool_kwargs["ssl_context"] = self._context
        if self._server_name:
            pool_kwargs["server_hostname"] = self._server_name
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)

    @property
    def _cert_reqs(self) -> str:
        return "CERT_NONE" if self._context.verify_mode == ssl.CERT_NONE else "CERT_REQUIRED"

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = self._cert_reqs
        conn.ca_certs = conn.ca_cert_dir = conn.cert_file = conn.key_file = None

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        kwargs: dict[str, Any] = dict(pool_kwargs)
        for key in ("ca_certs", "ca_cert_dir", "cert_file", "key_file"):
            kwargs.pop(key, None)
        kwargs["cert_reqs"] = self._cert_reqs
        return host_params, kwargs


def configure(session: requests.Session, settings: VaultSettings) -> None:
    """Set ``session`` up for the TLS the settings describe."""
    session.verify = settings.verify
    if needs_adapter(settings):
        session.mount("https://", TLSAdapter(build_context(settings), settings.tls_server_name))


# -- failures ----------------------------------------------------------------------------


def ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The :class:`ssl.SSLError` behind a ``requests``/``urllib3`` error, if there is one."""
    pending: list[Any] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        if isinstance(current, BaseException):
            pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return None


def failure(exc: BaseException, url: str, path: str, facts: TLSFacts) -> VaultTLSError | None:
    """``exc`` as a VaultTLSError saying what failed, or None when it is not a TLS failure."""
    cause = ssl_cause(exc)
    if cause is None:
        return None
    reason, what, advice = _classify(cause, url, facts)
    where = f"Vault at {url} ({path})"
    message = f"TLS with {where} failed: {what} CA in use: {facts.ca}. {advice}"
    return VaultTLSError(message, reason=reason, ca=facts.ca, url=url, path=path)


def _classify(cause: ssl.SSLError, url: str, facts: TLSFacts) -> tuple[str, str, str]:
    code = getattr(cause, "verify_code", None)
    detail = safe_text(getattr(cause, "verify_message", None) or _reason(cause), 120)
    host = facts.server_name or urlsplit(url).hostname or url
    if isinstance(cause, ssl.SSLCertVerificationError):
        if code in _HOSTNAME_CODES:
            return (
                "hostname-mismatch",
                f"host-name mismatch: the server's certificate is not valid for {host!r}.",
                "Put a name the certificate holds in VAULT_URL, or set VAULT_TLS_SERVER_NAME to it.",
            )
        if code == _EXPIRED:
            return (
                "expired",
                "expired certificate: the server's certificate is past its end date.",
                "Renew the server's certificate; waiting will not help.",
            )
        if code == _NOT_YET_VALID:
            return (
                "not-yet-valid",
                "the server's certificate is not valid yet.",
                "Check the clocks of this machine and of the server.",
            )
        if code in _UNKNOWN_CA_CODES:
            return (
                "unknown-ca",
                f"unknown CA: the server's certificate is not signed by a CA this client trusts ({detail}).",
                "Set VAULT_CACERT (a PEM file) or VAULT_CAPATH (a directory) to the CA that signed it.",
            )
        return "other", f"the server's certificate did not verify ({detail}).", "Check the certificate and its CA."
    reason = str(getattr(cause, "reason", "") or "")
    if reason in _NOT_TLS_REASONS:
        return (
            "not-tls",
            "the server does not speak TLS (it answered in plain HTTP, or is not Vault).",
            "Use http:// for a listener with tls_disable, or the port of its TLS listener.",
        )
    if any(alert in reason for alert in _CLIENT_CERT_REASONS):
        if facts.client_cert is None:
            return (
                "client-certificate",
                f"the server requires a client certificate and none was sent ({detail}).",
                "Set VAULT_CLIENT_CERT and VAULT_CLIENT_KEY to a certificate its tls_client_ca_file trusts.",
            )
        return (
            "client-certificate",
            f"the server refused the client certificate VAULT_CLIENT_CERT {facts.client_cert} ({detail}).",
            "Use a certificate signed by the CA the listener's tls_client_ca_file names.",
        )
    return "other", f"{detail}.", "Check the TLS settings (VAULT_CACERT, VAULT_CLIENT_CERT) and the server's listener."


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    library = getattr(exc, "library", None)
    if reason:
        return f"{library}: {reason}" if library else str(reason)
    return type(exc).__name__
