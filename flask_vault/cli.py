"""The ``flask vault`` command group, registered on the app by ``init_app``."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from .health import build_report

vault_cli = AppGroup("vault", help="Inspect and manage the app's Vault secrets.")

EXIT_CODES = {"pass": 0, "warn": 1, "fail": 2}


@vault_cli.command("status")
def status_command() -> None:
    """Server, login and secrets summary (exit 0 pass, 1 warn, 2 fail)."""
    report = build_report(current_app.extensions["vault"])
    click.echo(f"status: {report['status']}")
    for name, check in report["checks"].items():
        details = ", ".join(f"{k}={v}" for k, v in check.items() if k not in ("status", "keys") and v is not None)
        click.echo(f"  {name}: {check['status']}" + (f" ({details})" if details else ""))
        for key, source in check.get("keys", {}).items():
            where = source.get("path", "") + (f"#{source['field']}" if source.get("field") else "")
            version = f" v{source['version']}" if source.get("version") else ""
            click.echo(f"    {key}: {source['origin']} {where}{version}")
    if report.get("output"):
        click.echo(f"  note: {report['output']}")
    click.get_current_context().exit(EXIT_CODES[report["status"]])
