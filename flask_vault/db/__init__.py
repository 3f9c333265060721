"""Database credentials taken at connect time: providers, engines, Flask-SQLAlchemy."""

from flask_vault.db.credentials import CredentialProvider, Credentials, KVCredentials
from flask_vault.db.engines import DatabaseLogin, LoginStatus, attach_engine, is_login_refused

__all__ = [
    "CredentialProvider",
    "Credentials",
    "DatabaseLogin",
    "KVCredentials",
    "LoginStatus",
    "attach_engine",
    "is_login_refused",
]
