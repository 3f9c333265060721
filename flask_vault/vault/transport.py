"""The one request path to Vault: retries, failover, safe redirects, error translation, audit.

Every request flask-vault makes (KV, Transit, logins, renewals, the health probe's token
lookup, writes) goes through :meth:`Transport.request`:

* before it, the token's owner (the keeper, plugged in with :meth:`Transport.attach`) may
  log in first; after a 403 it may replace an expired or revoked token, and the request
  is then sent once more;
* a request Vault could not answer (connection error, 429, 412, 5xx but 501) is retried
  with jittered exponential backoff, within :data:`RETRY_BUDGET` seconds of waiting and
  ``VAULT_MAX_RETRIES`` retries; a connection error moves on to the next address of
  ``VAULT_URL``; a write that may have reached Vault is never sent twice;
* a 429 (a rate-limit quota) is retried after the ``Retry-After`` Vault sent (at least
  :data:`RATE_LIMIT_BACKOFF`, doubling; at most :data:`RETRY_AFTER_MAX` seconds) plus a
  random spread, even for a write, since Vault
  refused it before doing anything; until then this process sends nothing more to that
  part of Vault (a mount, or ``auth/<method>``): other requests wait for the same moment
  within their own budget, or fail at once (and the cache serves what it has);
* failures become :mod:`flask_vault.errors` (see :mod:`flask_vault.vault.translate`);
* each request leaves one record in the audit trail (:mod:`flask_vault.observe.audit`).

Underneath, :class:`VaultAdapter` keeps the HTTP status of every error and follows at most
one redirect, same scheme, only to a configured Vault address: hvac's own adapter loses
the status of statuses it has no exception class for (412, 472, 473, 504, ...) and, with
``allow_redirects``, would let ``requests`` carry the ``X-Vault-Token`` header to whatever
host a redirect names.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import hvac
import hvac.adapters
import hvac.exceptions
import requests

from flask_vault import jitter
from flask_vault.errors import VaultError, VaultUnavailableError
from flask_vault.observe.audit import OK, AuditTrail, TokenIdSource
from flask_vault.settings import VaultSettings
from flask_vault.vault import tls
from flask_vault.vault.translate import Need, Where, parse_retry_after, translate

T = TypeVar("T")

#: Longest total time spent backing off between retries of one request (seconds).
RETRY_BUDGET = 10.0
#: The longest ``Retry-After`` a 429 is waited out for; a longer one fails the request at once.
RETRY_AFTER_MAX = 10.0
#: A 429 is retried after its ``Retry-After`` plus a random part of it, up to this fraction.
RETRY_AFTER_SPREAD = 0.5
#: The shortest wait after a 429 (doubling with each retry), whatever its ``Retry-After`` says.
RATE_LIMIT_BACKOFF = 0.5
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 2.0


class TokenHooks(Protocol):
    """How the owner of the token takes part in every request (the token keeper implements it)."""

    def before_call(self) -> int:
        """Before a request: make sure there is a token; returns its generation."""
        ...

    def recover(self, error: VaultError, generation: int) -> bool:
        """After ``error``: True when a new token is in place and the request should be sent again.

        May raise a clearer :class:`VaultError` to report instead of ``error``.
        """
        ...


class _NoHooks:
    def before_call(self) -> int:
        return 0

    def recover(self, error: VaultError, generation: int) -> bool:
        return False


class Transport:
    """One client's connection to Vault: the hvac client, its addresses, hooks and audit trail.

    ``request`` is the only way a request is sent; see the module docstring. The token
    itself is set by its owner through :attr:`token`.
    """

    def __init__(self, settings: VaultSettings, *, trail: AuditTrail | None = None) -> None:
        self.settings = settings
        #: Audit records and request counters (see flask_vault.observe.audit).
        self.trail = trail if trail is not None else AuditTrail(token_id=self._token_id)
        self._hooks: TokenHooks = _NoHooks()
        self._token_id_source: TokenIdSource | None = None
        self._url_index = 0
        #: Part of Vault (see _family) -> monotonic time before which a 429 asked us not to ask again.
        self._throttled: dict[str, float] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()
        #: What a TLS error names: the CA in use, the client certificate, the server name.
        self.tls = tls.TLSFacts.of(settings)
        self._hvac = self._new_hvac_client(settings.token)

    def attach(self, hooks: TokenHooks, *, token_id: TokenIdSource) -> None:
        """Plug the token's owner in: its hooks run around every request, ``token_id`` tags the records."""
        self._hooks = hooks
        self._token_id_source = token_id

    def _token_id(self, resolve: bool) -> str | None:
        source = self._token_id_source
        return source(resolve) if source is not None else None

    # -- the HTTP client ---------------------------------------------------------------

    def _new_hvac_client(self, token: str | None) -> hvac.Client:
        session = requests.Session()
        session.trust_env = False  # no proxy or netrc surprises from the environment
        # hvac prefers a passed session's own `verify` (True by default) over its verify argument.
        tls.configure(session, self.settings)
        client = hvac.Client(
            url=self.url,
            token=token or "",  # "" stops hvac from reading VAULT_TOKEN or ~/.vault-token itself
            verify=self.settings.verify,
            timeout=self.settings.timeout,  # type: ignore[arg-type]  # requests takes floats
            namespace=self.settings.namespace,
            session=session,
            adapter=VaultAdapter,
            allow_redirects=False,  # VaultAdapter follows one redirect, to a configured address only
        )
        _adapter_of(client).allowed_origins = frozenset(origin_of(url) for url in self.settings.urls)
        return client

    def reset_after_fork(self) -> None:
        """In a forked child: a fresh lock and an HTTP session of its own (once per process)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._hvac = self._new_hvac_client(self.token)

    @property
    def hvac(self) -> hvac.Client:
        """The hvac client (its adapter sends the token in use)."""
        return self._hvac

    @property
    def adapter(self) -> VaultAdapter:
        return _adapter_of(self._hvac)

    @property
    def url(self) -> str:
        """The Vault address currently in use (the last one that answered)."""
        return self.settings.urls[self._url_index]

    @property
    def token(self) -> str | None:
        return self._hvac.token or None

    @token.setter
    def token(self, value: str | None) -> None:
        self._hvac.token = value or ""

    def side_adapter(self, token: str | None, *, url: str | None = None) -> VaultAdapter:
        """An adapter on this session, at the address in use (or ``url``), that sends ``token`` (or none).

        Built per request, so it follows failover; logins send no token, an unwrap only
        the wrapping token, a revoke at exit the token being revoked.
        """
        main = self.adapter
        adapter = VaultAdapter.from_adapter(main)
        adapter.token = token
        adapter.allowed_origins = main.allowed_origins
        if url is not None:
            adapter.base_uri = url
        return adapter

    def node_is_active(self) -> bool:
        """True when the address in use says it is the active node (``sys/health`` 200)."""
        try:
            return self.adapter.raw_get("/v1/sys/health").status_code == 200
        except requests.RequestException:
            return False

    # -- requests ----------------------------------------------------------------------

    def request(
        self,
        operation: str,
        path: str,
        func: Callable[[], T],
        *,
        idempotent: bool = True,
        token_hooks: bool = True,
        need: Need | None = None,
    ) -> T:
        """Run ``func`` (one Vault request) with retries, failover, error translation and an audit record.

        ``operation`` and ``path`` name it in the audit trail and in errors.
        ``idempotent=False``: never sent twice once it may
        have reached Vault. ``token_hooks=False`` for the requests the token's owner makes
        itself (logins, renewals, lookups): no login first, no token recovery after.
        ``need``: the capability and API path a policy must grant, named when Vault refuses.
        """
        hooks = self._hooks if token_hooks else _NO_HOOKS
        started = time.perf_counter()
        attempt = 0
        backoff_spent = 0.0
        relogged = False
        family = _family(path)
        while True:
            held = self._throttled.get(family, 0.0) - time.monotonic() if self._throttled else 0.0
            if held > 0:  # a 429 asked this process to wait: send nothing before then
                if backoff_spent + held > RETRY_BUDGET:
                    held_back = self._held_back(path, held)
                    duration = time.perf_counter() - started
                    self.trail.finish(operation, path, outcome=type(held_back).__name__, duration=duration, status=429)
                    raise held_back
                wait = held + jitter.up_to(held * RETRY_AFTER_SPREAD)
                backoff_spent += wait
                time.sleep(wait)
            generation = hooks.before_call()
            try:
                result = func()
            except Exception as exc:
                error = translate(exc, self._where(path, need))
                try:
                    resend = not relogged and hooks.recover(error, generation)
                except VaultError as clearer:  # the token's owner knows better what went wrong
                    error, resend = clearer, False
                if resend:
                    relogged = True  # a new token replaced an expired or revoked one: send it once more
                    continue
                delay = self._retry_delay(exc, error, attempt, idempotent)
                if error.status == 429:
                    self._hold(family, _rate_limit_wait(error, attempt))
                if delay is None or backoff_spent + delay > RETRY_BUDGET:
                    duration = time.perf_counter() - started
                    self.trail.finish(
                        operation, path, outcome=type(error).__name__, duration=duration, status=error.status
                    )
                    raise error from exc
                if _is_connection_error(exc):
                    self._fail_over()
                attempt += 1
                backoff_spent += delay
                self.trail.metrics.retried(operation, _retry_reason(exc, error))
                time.sleep(delay)
                continue
            self.trail.finish(
                operation,
                path,
                outcome=OK,
                duration=time.perf_counter() - started,
                version=_version_of(result),
                result=result,
            )
            return result

    def _where(self, path: str, need: Need | None) -> Where:
        settings = self.settings
        return Where(
            self.url,
            settings.mount_point,
            path,
            settings.timeout,
            has_token=bool(self.token),
            prefix=settings.path_prefix,
            environment=settings.environment,
            need=need,
            tls=self.tls,
        )

    def _retry_delay(self, exc: Exception, error: VaultError, attempt: int, idempotent: bool) -> float | None:
        if attempt >= self.settings.max_retries or not isinstance(error, VaultUnavailableError):
            return None
        if error.status == 429:  # refused before Vault did anything: safe to send again, even a write
            wait = _rate_limit_wait(error, attempt)
            return None if wait is None else wait + jitter.up_to(wait * RETRY_AFTER_SPREAD)
        if not idempotent and not isinstance(exc, requests.ConnectionError):
            return None  # the request may have reached Vault: do not write twice
        if error.status == 501:  # not initialized: waiting will not help
            return None
        if isinstance(exc, requests.ReadTimeout):
            return None  # a hung server: retrying would multiply the wait the timeout promised
        return jitter.less(min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt), 1.0)  # "full jitter"

    def _hold(self, family: str, wait: float | None) -> None:
        """Send nothing more to ``family`` for ``wait`` seconds (RETRY_AFTER_MAX when Vault asked for longer)."""
        until = time.monotonic() + (RETRY_AFTER_MAX if wait is None else wait)
        self._throttled[family] = max(until, self._throttled.get(family, 0.0))

    def _held_back(self, path: str, held: float) -> VaultUnavailableError:
        error = VaultUnavailableError(
            f"Vault at {self.url} is rate limiting this client (HTTP 429) for {path}: not asking again for"
            f" {held:.1f}s, as its Retry-After asked.",
            **self._where(path, None).fields(),
            status=429,
        )
        error.retry_after = held
        return error

    def _fail_over(self) -> None:
        if len(self.settings.urls) < 2:
            return
        with self._lock:
            self._url_index = (self._url_index + 1) % len(self.settings.urls)
            self._hvac.adapter.base_uri = self.url


_NO_HOOKS = _NoHooks()


def _adapter_of(client: hvac.Client) -> VaultAdapter:
    adapter = client.adapter
    assert isinstance(adapter, VaultAdapter)
    return adapter


def _family(path: str) -> str:
    """The part of Vault a rate-limit quota most likely covers: a mount, or ``auth/<method>``, ``sys/<area>``."""
    parts = path.split("/", 2)
    return "/".join(parts[:2]) if parts[0] in ("auth", "sys") else parts[0]


def _rate_limit_wait(error: VaultError, attempt: int) -> float | None:
    """How long a 429 asks to wait: its ``Retry-After``, at least a backoff that doubles from
    :data:`RATE_LIMIT_BACKOFF` (Vault rounds the header down, to 0 within the last second);
    None when that is more than :data:`RETRY_AFTER_MAX`."""
    backoff = min(_BACKOFF_CAP, RATE_LIMIT_BACKOFF * 2**attempt)
    retry_after = error.retry_after if isinstance(error, VaultUnavailableError) else None
    wait = max(retry_after or 0.0, backoff)
    return None if wait > RETRY_AFTER_MAX else wait


def _retry_reason(exc: Exception, error: VaultError) -> str:
    if error.status == 429:
        return "rate-limited"
    if _is_connection_error(exc):
        return "connection"
    return "unavailable"


def _is_connection_error(exc: Exception) -> bool:
    return isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout)


def _version_of(result: Any) -> int | None:
    if isinstance(result, dict):
        data = result.get("data")
        if isinstance(data, dict):
            meta = data.get("metadata")
            for source in (meta, data):
                if isinstance(source, dict) and isinstance(source.get("version"), int):
                    return int(source["version"])
    return None


class VaultAdapter(hvac.adapters.JSONAdapter):
    """JSONAdapter that records ``status_code`` on errors and vets redirects."""

    #: scheme://host:port of every configured Vault address; set by the transport.
    allowed_origins: frozenset[str] = frozenset()

    def request(self, method: str, url: str, headers: Any = None, raise_exception: bool = True, **kwargs: Any) -> Any:
        response = super().request(method, url, headers=headers, raise_exception=raise_exception, **kwargs)
        if isinstance(response, requests.Response) and response.is_redirect and raise_exception:
            return self._follow_once(method, url, response, headers, **kwargs)
        return response

    def _follow_once(self, method: str, url: str, response: requests.Response, headers: Any, **kwargs: Any) -> Any:
        location = response.headers.get("Location", "")
        target = urlsplit(location)
        origin = f"{target.scheme}://{target.netloc}"
        if target.scheme != urlsplit(self.base_uri).scheme or origin not in self.allowed_origins:
            raise VaultError(
                f"Vault at {self.base_uri} redirected to an address that is not configured"
                f" ({target.scheme}://{target.hostname}); not following it, so the token stays with the"
                " configured servers. List every Vault address in VAULT_URL.",
                url=self.base_uri,
                status=response.status_code,
            )
        request_kwargs = {**self._kwargs, **kwargs}  # type: ignore[attr-defined]  # hvac sets it, untyped
        followed = self.session.request(
            method=method,
            url=location,
            headers={**(headers or {}), **self._vault_headers()},
            allow_redirects=False,
            **request_kwargs,
        )
        if followed.is_redirect:
            raise VaultError(
                f"Vault redirected twice ({self.base_uri}, then {origin}); not following a second redirect.",
                url=self.base_uri,
                status=followed.status_code,
            )
        if not followed.ok:
            self._raise_for_error(method, location, followed)
        if followed.status_code == 200:
            try:
                return followed.json()
            except ValueError:
                pass
        return followed

    def _vault_headers(self) -> dict[str, str]:
        headers = {"X-Vault-Request": "true"}
        if self.token:
            headers["X-Vault-Token"] = self.token
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        return headers

    def raw_get(self, url: str, **kwargs: Any) -> requests.Response:
        """A GET that returns the ``requests.Response`` whatever its status (for /sys/health)."""
        raw_request = hvac.adapters.RawAdapter.request
        response: requests.Response = raw_request(self, "get", url, raise_exception=False, **kwargs)  # type: ignore[arg-type]
        return response

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        try:
            super()._raise_for_error(method, url, response)  # type: ignore[misc]
        except hvac.exceptions.VaultError as exc:
            exc.status_code = response.status_code  # type: ignore[attr-defined]
            exc.retry_after = parse_retry_after(response.headers.get("Retry-After"))  # type: ignore[attr-defined]
            raise


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
