"""Figure 2: ``init_app`` with the default mapping: Vault requests and wall time vs raw hvac.

Both sides fill SECRET_KEY, JWT_SECRET_KEY and SQLALCHEMY_DATABASE_URI of a fresh Flask
app from ``flask`` and ``database`` (two distinct paths), in the same process, rounds
interleaved, against the same server. Requests are counted where they leave the process
(``requests``' HTTPAdapter.send) and, once per side, where Vault sees them (a file audit
device on a second server).

Two logins: a token given as is (``VAULT_TOKEN``; raw hvac sends no login request) and
AppRole (``VAULT_ROLE_ID`` + ``VAULT_SECRET_ID``; raw hvac logs in with ``auth.approle``).
"""

# ruff: noqa: RUF001, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import hvac
import requests
from flask import Flask

from flask_vault import FlaskVault
from flask_vault.database import build_database_url
from flask_vault.devserver import OpenBaoServer

from .common import (
    DATABASE_SECRET,
    ENVIRONMENT,
    FLASK_SECRET,
    PREFIX,
    BenchEnv,
    Figure,
    Profile,
    RequestLog,
    Stat,
    close,
    num,
    ratio,
    root_client,
)

TARGET_TIME_RATIO = 1.2
DISTINCT_PATHS = 2


def setup_approle(server: OpenBaoServer) -> tuple[str, str]:
    """An AppRole that may read the bench secrets; returns (role_id, secret_id)."""
    with root_client(server) as root:
        if "approle/" not in root.sys.list_auth_methods()["data"]:
            root.sys.enable_auth_method("approle")
        policy = f'path "secret/data/{PREFIX}/*" {{\n  capabilities = ["read"]\n}}\n'
        root.sys.create_or_update_policy("bench-read", policy)
        root.auth.approle.create_or_update_approle(
            "bench", token_policies=["bench-read"], token_ttl="1h", token_max_ttl="2h"
        )
        role_id = root.auth.approle.read_role_id("bench")["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id("bench")["data"]["secret_id"]
    return role_id, secret_id


def _login_config(server: OpenBaoServer, login: str, approle: tuple[str, str]) -> dict[str, Any]:
    base = {
        "VAULT_URL": server.url,
        "VAULT_PATH_PREFIX": PREFIX,
        "VAULT_ENVIRONMENT": ENVIRONMENT,
        "VAULT_REVOKE_ON_EXIT": False,
    }
    if login == "token":
        return {**base, "VAULT_TOKEN": server.root_token}
    return {**base, "VAULT_ROLE_ID": approle[0], "VAULT_SECRET_ID": approle[1]}


def with_flask_vault(server: OpenBaoServer, login: str, approle: tuple[str, str]) -> tuple[float, RequestLog]:
    app = Flask("bench_init_app")
    app.config.update(_login_config(server, login, approle))
    vault = FlaskVault()
    with RequestLog(server.port) as log:
        started = time.perf_counter()
        vault.init_app(app)
        elapsed = time.perf_counter() - started
    assert app.config["SECRET_KEY"] and app.config["JWT_SECRET_KEY"] and app.config["SQLALCHEMY_DATABASE_URI"]
    close(app.extensions["vault"].client)
    return elapsed, log


def with_raw_hvac(server: OpenBaoServer, login: str, approle: tuple[str, str]) -> tuple[float, RequestLog]:
    app = Flask("bench_raw_hvac")
    with RequestLog(server.port) as log:
        started = time.perf_counter()
        session = requests.Session()
        session.trust_env = False
        client = hvac.Client(url=server.url, token=server.root_token if login == "token" else "", session=session)
        if login == "approle":
            client.auth.approle.login(role_id=approle[0], secret_id=approle[1])
        kv = client.secrets.kv.v2
        flask_secret = kv.read_secret_version(
            path=f"{PREFIX}/{ENVIRONMENT}/flask", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]
        database = kv.read_secret_version(
            path=f"{PREFIX}/{ENVIRONMENT}/database", mount_point="secret", raise_on_deleted_version=True
        )["data"]["data"]
        app.config["SECRET_KEY"] = flask_secret["secret_key"]
        app.config["JWT_SECRET_KEY"] = flask_secret["jwt_secret"]
        app.config["SQLALCHEMY_DATABASE_URI"] = build_database_url(database)
        elapsed = time.perf_counter() - started
    close(client)
    return elapsed, log


@contextmanager
def kv_reads_in_process() -> Iterator[None]:
    """hvac's KV v2 read answers the seeded secrets without a request, for both sides alike."""
    seeded = {"flask": FLASK_SECRET, "database": DATABASE_SECRET}

    def read_secret_version(self: Any, path: str, **_: Any) -> dict[str, Any]:
        metadata = {"version": 1, "created_time": "2026-01-01T00:00:00Z", "deletion_time": "", "destroyed": False}
        return {"data": {"data": dict(seeded[path.rsplit("/", 1)[-1]]), "metadata": metadata}}

    with mock.patch("hvac.api.secrets_engines.kv_v2.KvV2.read_secret_version", read_secret_version):
        yield


def without_the_network(server: OpenBaoServer, rounds: int) -> tuple[Stat, Stat]:
    """``init_app`` and raw hvac with a token, their KV reads answered in-process: the CPU work alone (µs)."""
    times: dict[str, list[float]] = {"flask-vault": [], "raw hvac": []}
    with kv_reads_in_process():
        for round_ in range(rounds + 3):  # 3 warm-up rounds
            for name, side in (("flask-vault", with_flask_vault), ("raw hvac", with_raw_hvac)):
                elapsed, _ = side(server, "token", ("", ""))
                if round_ >= 3:
                    times[name].append(elapsed * 1e6)
    return Stat.of(times["flask-vault"]), Stat.of(times["raw hvac"])


def _logins(log: RequestLog) -> int:
    return log.count(lambda r: r.path.endswith("/login") or r.path.endswith("/lookup-self"))


def _endpoints(log: RequestLog) -> str:
    return "; ".join(f"{count}× {endpoint}" for endpoint, count in sorted(log.by_endpoint().items()))


def run(env: BenchEnv, profile: Profile) -> Figure:
    figure = Figure(2, "`init_app`, default mapping: Vault requests and wall time")
    approle = {server.port: setup_approle(server) for server in (env.plain, env.audited)}
    sides: dict[str, Callable[[OpenBaoServer, str, tuple[str, str]], tuple[float, RequestLog]]] = {
        "flask-vault": with_flask_vault,
        "raw hvac": with_raw_hvac,
    }
    times: dict[tuple[str, str], list[float]] = {}
    http_times: dict[tuple[str, str], list[float]] = {}
    logs: dict[tuple[str, str], RequestLog] = {}
    logins = ("token", "approle")
    for login in logins:  # warm-up: imports, first connections
        for side in sides.values():
            side(env.plain, login, approle[env.plain.port])
    for _ in range(profile.init_rounds):
        for login in logins:
            for name, side in sides.items():
                elapsed, log = side(env.plain, login, approle[env.plain.port])
                times.setdefault((name, login), []).append(elapsed * 1000)
                http_times.setdefault((name, login), []).append(log.seconds() * 1000)
                logs[(name, login)] = log
    # What Vault itself saw, once per side and login (audit device on the second server).
    seen: dict[tuple[str, str], int] = {}
    for login in logins:
        for name, side in sides.items():
            mark = env.audit.mark()
            side(env.audited, login, approle[env.audited.port])
            time.sleep(0.05)  # the audit device writes asynchronously to the file
            seen[(name, login)] = len(env.audit.responses_since(mark))

    cpu_fv, cpu_raw = without_the_network(env.plain, profile.init_rounds)

    figure.detail_header = (
        "login",
        "side",
        "Vault requests (what was sent)",
        "seen by Vault",
        "wall time, ms",
        "HTTP time, ms",
    )
    results: dict[str, dict[str, Any]] = {}
    for login in logins:
        for name in sides:
            key = (name, login)
            log = logs[key]
            stat = Stat.of(times[key])
            figure.details.append(
                (
                    login,
                    name,
                    f"{len(log.sent)}: {_endpoints(log)}",
                    str(seen[key]),
                    stat.fmt(digits=2),
                    Stat.of(http_times[key]).fmt(digits=2),
                )
            )
            results.setdefault(login, {})[name] = (log, stat)
    token_fv, token_fv_time = results["token"]["flask-vault"]
    token_raw, token_raw_time = results["token"]["raw hvac"]
    role_fv, role_fv_time = results["approle"]["flask-vault"]
    role_raw, role_raw_time = results["approle"]["raw hvac"]
    token_ratio = token_fv_time.median / token_raw_time.median
    role_ratio = role_fv_time.median / role_raw_time.median
    allowed = 1 + DISTINCT_PATHS
    figure.measured = (
        f"token: {len(token_fv.sent)} requests, {num(token_fv_time.median)} ms; "
        f"AppRole: {len(role_fv.sent)} requests, {num(role_fv_time.median)} ms"
    )
    figure.compared = (
        f"raw hvac: token {len(token_raw.sent)} requests, {num(token_raw_time.median)} ms; "
        f"AppRole {len(role_raw.sent)} requests, {num(role_raw_time.median)} ms"
    )
    figure.ratio = f"time {ratio(token_ratio)} (token), {ratio(role_ratio)} (AppRole)"
    figure.target = f"≤ 1 login + 1 read per distinct path (≤ {allowed} requests); time ≤ {TARGET_TIME_RATIO:g}×"
    figure.met = (
        len(token_fv.sent) <= allowed
        and len(role_fv.sent) <= allowed
        and max(token_ratio, role_ratio) <= TARGET_TIME_RATIO
    )
    reads = token_fv.count(lambda r: r.path.startswith("/v1/secret/data/"))
    extra = sorted(
        {
            f"{r.method} {r.path}"
            for log in (token_fv, role_fv)
            for r in log.sent
            if not r.path.startswith("/v1/secret/data/") and not r.path.endswith("/login")
        }
    )
    figure.notes.append(
        f"{profile.init_rounds} rounds per side and login, interleaved; time is the `init_app` call alone (settings,"
        " login, reads, filling the keys, health and metrics set-up, blueprint and CLI registration) vs raw hvac"
        " building its client, logging in, reading and filling the same three keys. HTTP time is the part spent"
        " inside `requests`."
    )
    figure.notes.append(
        f"flask-vault read {reads} distinct path(s) once each ({DISTINCT_PATHS} expected). Requests beyond a login and"
        f" the reads: {', '.join(extra) or 'none'}."
    )
    figure.notes.append(
        f"Logins and lookups counted: flask-vault token {_logins(token_fv)}, AppRole {_logins(role_fv)}; raw hvac"
        f" token {_logins(token_raw)}, AppRole {_logins(role_raw)} (a token given as is needs no login; the"
        " extension looks it up in the background, within a second after `init_app`, to learn its TTL and"
        " schedule its renewal, so that lookup is not part of start-up)."
    )
    figure.notes.append(
        f"Without the network (both sides' KV reads answered in-process, token): `init_app` {cpu_fv.fmt(' µs')},"
        f" raw hvac {cpu_raw.fmt(' µs')}: `init_app` adds {num(cpu_fv.median - cpu_raw.median)} µs of work of"
        " its own on this machine. In the rounds against the server the same work costs more, as the code runs"
        " between network waits with colder CPU caches."
    )
    figure.notes.append(
        "What `init_app` does beyond raw hvac's work: read and check its settings, build the client (cache, token"
        " keeper, audit trail, backups) around the same hvac client, register the /health/vault route (its URL"
        " builders are compiled on first `url_for`, not here), set up signing keys, live refresh, health and"
        " metrics. All of it is CPU work of fixed size, so its share falls as Vault's round trip grows: on"
        " loopback a read takes about half a millisecond. The process's one background thread (renewals, the"
        " token lookup) is started by the first app in the warm-up rounds and reused by every later one, as a"
        " second app or client in a process reuses it."
    )
    return figure
