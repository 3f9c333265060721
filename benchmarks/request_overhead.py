"""Figure 9: what the extension adds to every request: a trivial route with it vs without it.

Two apps in this process, the same but for ``FlaskVault``: ``without`` has the three keys
hard-coded, ``with`` fills them from Vault (default mapping, a token given as is). Both
serve ``GET /ping`` → ``pong``. Each request is one call of the app's WSGI callable with
a prepared environ (the app's own work, no client or server around it), rounds
interleaved. What the extension adds per request: the live-refresh hook before it (one
time comparison while the mapped secrets are fresh) and its session interface, which
verifies cookies with ``SECRET_KEY``'s Vault versions. A third app, ``with, Flask's
sessions``, keeps Flask's own session interface, to show the hook alone.

The time is the request loop's thread CPU time (``time.thread_time``): on this machine
other processes share the two cores, and a loop that does not wait on anything costs
its CPU time when a core is free; wall time is in the details.
"""

# ruff: noqa: RUF001, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from werkzeug.test import EnvironBuilder

from flask_vault import FlaskVault

from .apps import HARD_CODED
from .common import BenchEnv, Figure, Profile, Stat, close, num, ratio

TARGET_ADDED_US = 2.0
TARGET_RATIO = 1.02


def _app(env: BenchEnv, kind: str) -> Flask:
    app = Flask("bench_request")
    app.config.update(HARD_CODED)

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    if kind != "without":
        app.config.update(env.vault_config(VAULT_REVOKE_ON_EXIT=False))
        FlaskVault(app)
        if kind == "with, Flask's sessions":
            app.session_interface = SecureCookieSessionInterface()
    return app


def _runner(app: Flask) -> Callable[[int], tuple[float, float]]:
    environ = EnvironBuilder(path="/ping").get_environ()
    wsgi = app.wsgi_app

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        assert status.startswith("200")

    def run(count: int) -> tuple[float, float]:
        """Seconds of thread CPU time and of wall time per request."""
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(count):
            for _chunk in wsgi(dict(environ), start_response):
                pass
        return (time.thread_time() - cpu) / count, (time.perf_counter() - wall) / count

    return run


def run(env: BenchEnv, profile: Profile) -> Figure:
    figure = Figure(9, "added per request: a trivial route with the extension vs without")
    kinds = ("without", "with", "with, Flask's sessions")
    apps = {kind: _app(env, kind) for kind in kinds}
    runners = {kind: _runner(app) for kind, app in apps.items()}
    count = max(200, profile.cached_calls // 40)
    rounds = max(3, profile.rounds * 4)
    for runner in runners.values():  # warm-up: first requests, imports, the refresher's first touch
        runner(min(count, 500))
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    wall: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(rounds):
        for kind, runner in runners.items():
            seconds, elapsed = runner(count)
            cpu[kind].append(seconds * 1e6)
            wall[kind].append(elapsed * 1e6)
    stats = {kind: Stat.of(cpu[kind]) for kind in kinds}
    walls = {kind: Stat.of(wall[kind]) for kind in kinds}
    base = stats["without"].median
    added = stats["with"].median - base
    hook_only = stats["with, Flask's sessions"].median - base
    figure.measured = f"{num(stats['with'].median)} µs per request ({'+' if added >= 0 else '−'}{num(abs(added))} µs)"
    figure.compared = f"the same app without it: {num(base)} µs"
    figure.ratio = ratio(stats["with"].median / base)
    figure.target = f"≤ {TARGET_ADDED_US:g} µs added; ≤ {TARGET_RATIO:g}×"
    figure.met = added <= TARGET_ADDED_US and stats["with"].median / base <= TARGET_RATIO
    figure.detail_header = ("app", "CPU µs per request", "added", "wall µs per request")
    for kind in kinds:
        figure.details.append(
            (
                kind,
                stats[kind].fmt(digits=2),
                "—" if kind == "without" else f"{stats[kind].median - base:+.2f} µs",
                walls[kind].fmt(digits=2),
            )
        )
    figure.notes.append(
        f"{rounds} rounds of {count:,} requests per app, interleaved; each request is one call of the app's WSGI"
        " callable (routing, request and app contexts, session, response), without a client or a server."
    )
    figure.notes.append(
        f"The live-refresh hook alone (the app keeping Flask's session interface) adds {hook_only:+.2f} µs: Flask"
        " calling a before_request function, then one time comparison while the mapped secrets are before their"
        " refresh-ahead point. The extension's session interface reuses its itsdangerous serializer while the"
        " keys stay the same, where Flask's builds one per request, which is why the app with it can be faster."
    )
    for app in apps.values():
        state = app.extensions.get("vault")
        if state is not None:
            close(state.client)
    return figure
