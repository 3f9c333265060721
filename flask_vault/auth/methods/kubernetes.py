"""The ``kubernetes`` method: the pod's service-account token (read at each login) and a role."""

from __future__ import annotations

from pathlib import Path

from flask_vault.auth.methods.base import auth_mount
from flask_vault.auth.methods.jwt import JWTAuth
from flask_vault.errors import VaultConfigError
from flask_vault.settings import VaultSettings

#: The service-account token a Kubernetes pod gets by default.
K8S_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class KubernetesAuth(JWTAuth):
    """The ``kubernetes`` auth method with the pod's service-account token (read at each login)."""

    method = "kubernetes"
    selected_by = ("k8s_role",)
    _role_key = "VAULT_K8S_ROLE"
    _file_key = "VAULT_K8S_TOKEN_FILE"

    def __init__(self, role: str | None, *, token_file: str = K8S_TOKEN_FILE, mount: str = "kubernetes") -> None:
        if not role:
            raise VaultConfigError("kubernetes login needs VAULT_K8S_ROLE.", key="VAULT_K8S_ROLE")
        self.role = role
        self.mount = auth_mount("VAULT_K8S_MOUNT", mount)
        self.jwt_file = Path(token_file).expanduser()
        self._jwt = None

    @classmethod
    def from_settings(cls, settings: VaultSettings) -> KubernetesAuth:
        return cls(settings.k8s_role, token_file=settings.k8s_token_file, mount=settings.k8s_mount)
