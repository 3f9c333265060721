"""Database credentials taken at connect time: providers (a KV secret, a database secrets
engine role), engines and their pools, Flask-SQLAlchemy."""

from flask_vault.db.credentials import CredentialProvider, Credentials, KVCredentials, SwitchingProvider
from flask_vault.db.engines import DatabaseLogin, LoginStatus, attach_engine, is_login_refused
from flask_vault.db.lease import LeaseCredentials, LeaseStats

__all__ = [
    "CredentialProvider",
    "Credentials",
    "DatabaseLogin",
    "KVCredentials",
    "LeaseCredentials",
    "LeaseStats",
    "LoginStatus",
    "SwitchingProvider",
    "attach_engine",
    "is_login_refused",
]
