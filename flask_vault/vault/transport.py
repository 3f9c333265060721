"""The HTTP layer under hvac: status codes on errors, and safe redirects.

hvac's own adapter loses the HTTP status of statuses it has no exception class for
(412, 472, 473, 504, ...) and, with ``allow_redirects``, would let ``requests`` carry
the ``X-Vault-Token`` header to whatever host a redirect names. This adapter keeps the
status on every error and follows at most one redirect, same scheme, only to a
configured Vault address.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import hvac.adapters
import hvac.exceptions
import requests

from flask_vault.errors import VaultError


class VaultAdapter(hvac.adapters.JSONAdapter):
    """JSONAdapter that records ``status_code`` on errors and vets redirects."""

    #: scheme://host:port of every configured Vault address; set by the client.
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
            raise


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
