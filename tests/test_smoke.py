from flask import Flask

from flask_vault import FlaskVault


def test_extension_fills_secret_key_from_vault(app: Flask, vault: FlaskVault, seeded: dict) -> None:
    assert app.config["SECRET_KEY"] == seeded["flask"]["secret_key"]
