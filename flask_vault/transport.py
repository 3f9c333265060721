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
        here = urlsplit(self.base_uri)
        origin = f"{target.scheme}://{target.netloc}"
        if target.scheme != here.scheme or origin not in self.allowed_origins:
            error = hvac.exceptions.UnexpectedError(
                f"Vault redirected to an address that is not configured ({target.scheme}://{target.hostname}); "
                "not following it, so the token stays with the configured servers",
                method=method,
                url=url,
            )
            error.status_code = response.status_code  # type: ignore[attr-defined]
            raise error
        saved = self.base_uri
        self.base_uri = origin
        try:
            followed = super().request(
                method, target.path + (f"?{target.query}" if target.query else ""), headers=headers, **kwargs
            )
        finally:
            self.base_uri = saved
        if isinstance(followed, requests.Response) and followed.is_redirect:
            error = hvac.exceptions.UnexpectedError("Vault redirected twice; not following", method=method, url=url)
            error.status_code = followed.status_code  # type: ignore[attr-defined]
            raise error
        return followed

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
