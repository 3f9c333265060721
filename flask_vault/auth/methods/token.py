"""The ``token`` method: a token given as is, an Agent's token file, or ``~/.vault-token``."""

from __future__ import annotations

from pathlib import Path

from flask_vault.auth.methods.base import Authenticator, LoginResult
from flask_vault.errors import VaultAuthError
from flask_vault.settings import VaultSettings
from flask_vault.vault.transport import Transport

#: Where the Vault and OpenBao CLIs keep the token of ``vault login`` / ``bao login``.
CLI_TOKEN_FILE = "~/.vault-token"


class TokenAuth(Authenticator):
    """A token given as is: ``VAULT_TOKEN``, else ``VAULT_TOKEN_FILE``, else ``~/.vault-token``.

    A token file (an Agent sink) is read again whenever it changes; the keeper checks
    it before requests (at most once a second) and after a 403.
    """

    method = "token"
    creates_tokens = False

    def __init__(self, token: str | None = None, token_file: str | None = None, *, cli_file: bool = True) -> None:
        self._token = token or None
        if self._token is None and token_file:
            self.path: Path | None = Path(token_file).expanduser()
            self.source = "VAULT_TOKEN_FILE"
        elif self._token is None and cli_file:
            self.path = Path(CLI_TOKEN_FILE).expanduser()
            self.source = CLI_TOKEN_FILE
        else:
            self.path = None
            self.source = "VAULT_TOKEN" if self._token else "none"
        self._signature: tuple[int, int, int] | None = None
        self._file_token: str | None = None

    @classmethod
    def from_settings(cls, settings: VaultSettings) -> TokenAuth:
        return cls(settings.token, settings.token_file)

    @property
    def refreshable(self) -> bool:
        return self.path is not None

    @property
    def static_token(self) -> str | None:
        return self._token

    @property
    def from_agent(self) -> bool:
        """True for an Agent's token file: the Agent renews and replaces the token, not the keeper."""
        return self.source == "VAULT_TOKEN_FILE"

    def describe(self) -> str:
        return f"token from {self.source}" + (f" ({self.path})" if self.source == "VAULT_TOKEN_FILE" else "")

    def changed(self) -> bool:
        """True when the token file is not what was read last (cheap: one ``stat``)."""
        return self.path is not None and self._stat() != self._signature

    def _stat(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> str | None:
        """The token now: the fixed one, or the file's content (re-read when it changed)."""
        if self.path is None:
            return self._token
        signature = self._stat()
        if signature is not None and signature == self._signature:
            return self._file_token
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if self.source == CLI_TOKEN_FILE:
                self._signature, self._file_token = None, None
                return None
            raise VaultAuthError(
                f"VAULT_TOKEN_FILE {self.path} does not exist. Is the Vault/OpenBao Agent running and writing "
                "its token sink there?"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise VaultAuthError(f"Cannot read the token file {self.path} ({type(exc).__name__}).") from None
        self._signature, self._file_token = signature, text or None
        return self._file_token

    def login(self, transport: Transport) -> LoginResult | None:
        token = self.read()
        return None if token is None else LoginResult(token=token, created=False)
