"""How many tokens this app's login role has alive in Vault, to spot a leak.

Every worker logs in for itself and revokes its token when it exits normally; a killed
worker's token lives on until its TTL. So the live tokens of the app's role should be
about the number of running workers, plus those killed within the last TTL: a number
that keeps growing is a leak (tokens created and never revoked, the "lease explosion").

The role is the one the token in use was created by: its ``lookup-self`` names the login
path (``auth/approle/login``) and the role in its metadata (AppRole's ``role_name``,
JWT's and Kubernetes' ``role``). An operator, whose own token may list tokens where the
app's must not, names the app's role instead (``role=``: any login path). Counting lists
every accessor (``list`` and ``sudo`` on ``auth/token/accessors``) and looks each one up
(``update`` on ``auth/token/lookup-accessor``): one request per token of the whole
server, at most ``limit``. No token or accessor leaves this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flask_vault.auth.keeper import TokenKeeper
from flask_vault.errors import VaultError, VaultPermissionError

#: Most accessors looked up by one count.
LIMIT = 2000
ACCESSORS = "auth/token/accessors"
LOOKUP_ACCESSOR = "auth/token/lookup-accessor"
#: What a policy needs for the count (shown when it is missing).
NEEDED = (
    f'path "{ACCESSORS}" {{ capabilities = ["list", "sudo"] }} and'
    f' path "{LOOKUP_ACCESSOR}" {{ capabilities = ["update"] }}'
)


@dataclass(frozen=True)
class TokenCensus:
    """The live tokens of one login role. ``alive`` is None when they could not be counted (``reason``)."""

    #: The login path and role, e.g. ``auth/approle/login`` role ``store-ci``.
    login_path: str | None
    role: str | None
    alive: int | None
    #: Accessors on the whole server, and how many of them were looked up.
    listed: int = 0
    checked: int = 0
    reason: str | None = None

    @property
    def complete(self) -> bool:
        return self.alive is not None and self.checked == self.listed

    def describe(self) -> str:
        """One line for ``flask vault status``."""
        if self.alive is None:
            return f"Live tokens of this app's role: unknown ({self.reason})"
        more = "" if self.complete else f" (at least: {self.checked} of {self.listed} tokens looked up)"
        where = self.login_path or "any login path"
        return (
            f"Live tokens of this app's role: {self.alive} ({self.role} at {where}; {self.listed} tokens"
            f" on the server){more}. Expected: about one per running worker, plus those killed within the TTL."
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}


def count_role_tokens(keeper: TokenKeeper, *, role: str | None = None, limit: int = LIMIT) -> TokenCensus:
    """Count the live tokens created by ``role`` (default: the role that created the token in use).

    See the module docstring.
    """
    login_path: str | None = None
    if role is None:
        try:
            own = keeper.lookup()
        except VaultError as exc:
            return TokenCensus(None, None, None, reason=f"this app's token could not be looked up: {exc.message}")
        login_path, role = _role_of(own)
        if role is None:
            return TokenCensus(
                login_path, None, None, reason="this app's token was not created by a login role; name it with --role"
            )
    transport = keeper.transport
    try:
        listed = transport.request("list", ACCESSORS, lambda: transport.hvac.adapter.list(f"/v1/{ACCESSORS}"))
    except VaultPermissionError:
        return TokenCensus(
            login_path, role, None, reason=f"the policy does not allow listing tokens; it needs {NEEDED}"
        )
    accessors = [a for a in ((listed or {}).get("data") or {}).get("keys") or [] if isinstance(a, str)]
    alive = checked = 0
    for accessor in accessors[:limit]:
        try:
            found = transport.request(
                "lookup",
                LOOKUP_ACCESSOR,
                lambda accessor=accessor: transport.hvac.auth.token.lookup_accessor(accessor),  # type: ignore[misc]
            )
        except VaultPermissionError:
            return TokenCensus(
                login_path,
                role,
                None,
                len(accessors),
                checked,
                f"the policy does not allow looking tokens up; it needs {NEEDED}",
            )
        except VaultError:  # expired or revoked since it was listed
            checked += 1
            continue
        checked += 1
        path_of, role_of = _role_of((found or {}).get("data") or {})
        if role_of == role and login_path in (None, path_of):
            alive += 1
    return TokenCensus(login_path, role, alive, len(accessors), checked)


def _role_of(data: dict[str, Any]) -> tuple[str | None, str | None]:
    meta = data.get("meta") or {}
    role = meta.get("role_name") or meta.get("role") if isinstance(meta, dict) else None
    path = data.get("path")
    return (path if isinstance(path, str) else None, role if isinstance(role, str) else None)
