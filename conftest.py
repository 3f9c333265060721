pytest_plugins = ["flask_vault.testing"]
