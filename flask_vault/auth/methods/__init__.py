"""Login methods: one module per method, and the registry that picks one from the settings.

An :class:`Authenticator` knows *how* to get a token for one login method; the
:class:`~flask_vault.auth.keeper.TokenKeeper` decides *when*. :data:`AUTH_METHODS` lists
every method once: adding one is a module with its class (its ``method`` name, the
settings that select it, ``from_settings`` and ``login``) and one entry below.
"""

from __future__ import annotations

from flask_vault.auth.methods.approle import AppRoleAuth
from flask_vault.auth.methods.base import Authenticator, LoginResult
from flask_vault.auth.methods.jwt import JWTAuth
from flask_vault.auth.methods.kubernetes import K8S_TOKEN_FILE, KubernetesAuth
from flask_vault.auth.methods.token import CLI_TOKEN_FILE, TokenAuth
from flask_vault.errors import VaultConfigError
from flask_vault.settings import VaultSettings

#: VAULT_AUTH_METHOD name -> its authenticator class, in the order error messages list them.
AUTH_METHODS: dict[str, type[Authenticator]] = {
    cls.method: cls for cls in (TokenAuth, AppRoleAuth, JWTAuth, KubernetesAuth)
}
#: The method when VAULT_AUTH_METHOD is not set and no other method's settings are present.
DEFAULT_METHOD = TokenAuth.method

__all__ = [
    "AUTH_METHODS",
    "CLI_TOKEN_FILE",
    "DEFAULT_METHOD",
    "K8S_TOKEN_FILE",
    "AppRoleAuth",
    "Authenticator",
    "JWTAuth",
    "KubernetesAuth",
    "LoginResult",
    "TokenAuth",
    "authenticator_from_settings",
    "infer_auth_method",
]


def infer_auth_method(settings: VaultSettings) -> str:
    """``VAULT_AUTH_METHOD``, else the one method whose settings are present, else ``token``."""
    names = ", ".join(AUTH_METHODS)
    if settings.auth_method:
        if settings.auth_method not in AUTH_METHODS:
            raise VaultConfigError(
                f"VAULT_AUTH_METHOD must be one of {names}, got {settings.auth_method!r}.", key="VAULT_AUTH_METHOD"
            )
        return settings.auth_method
    present = [name for name, cls in AUTH_METHODS.items() if any(getattr(settings, attr) for attr in cls.selected_by)]
    if len(present) > 1:
        raise VaultConfigError(
            f"Settings for several login methods are present ({', '.join(present)}); set VAULT_AUTH_METHOD to one "
            f"of {names}.",
            key="VAULT_AUTH_METHOD",
        )
    return present[0] if present else DEFAULT_METHOD


def authenticator_from_settings(settings: VaultSettings) -> Authenticator:
    """The validated authenticator for ``settings``; a bad combination raises VaultConfigError."""
    return AUTH_METHODS[infer_auth_method(settings)].from_settings(settings)
