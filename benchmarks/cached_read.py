"""Figure 1: a cached ``get_secret`` per call, against hvac, ``bao proxy`` and a plain dict.

All four run in the same rounds, interleaved, against the same (un-audited) dev server:

* ``VaultClient.get_secret("flask", "secret_key")`` with a warm cache;
* the module-level ``flask_vault.get_secret`` inside an app context (what a view calls);
* a plain dict lookup ``SECRETS["flask"]["secret_key"]`` (the floor);
* hvac ``read_secret_version`` per call (one HTTP request each);
* the same hvac read through ``bao proxy`` (auto-auth token, cache stanza): OpenBao's
  proxy caches leased secrets and tokens, not static KV v2 reads, so each read is
  forwarded to the server; the figure checks that by writing a new version directly
  and reading it back through the proxy at once;
* ``get_secret(..., use_cache=False)`` (a read through the extension: hvac plus its own work).

Then a breakdown of where a cached call's time goes, each part timed alone.
"""

# ruff: noqa: RUF001, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

import timeit
from typing import Any

import hvac
import requests
from flask import Flask

import flask_vault
from flask_vault import FlaskVault, VaultClient, VaultSettings
from flask_vault.paths import check_secret_name

from .common import (
    ENVIRONMENT,
    FLASK_SECRET,
    PREFIX,
    BenchEnv,
    Figure,
    Profile,
    Stat,
    close,
    num,
    ratio,
    root_client,
)

TARGET_US = 1.0
TARGET_VS_HVAC = 1000.0
TARGET_VS_DICT = 20.0


def _hvac_client(url: str, token: str) -> hvac.Client:
    session = requests.Session()
    session.trust_env = False
    return hvac.Client(url=url, token=token, session=session)


def _per_call(statement: str, namespace: dict[str, Any], number: int) -> float:
    """Seconds per execution of ``statement`` (timeit: no wrapper call, GC off while timing)."""
    return timeit.Timer(statement, globals=namespace).timeit(number) / number


def _proxy_passes_through(root: hvac.Client, proxy_client: hvac.Client) -> bool:
    """Write a new version directly; True when the proxy's very next read returns it."""
    path = f"{PREFIX}/{ENVIRONMENT}/proxy-check"
    root.secrets.kv.v2.create_or_update_secret(path, {"n": "1"})
    proxy_client.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
    written = root.secrets.kv.v2.create_or_update_secret(path, {"n": "2"})["data"]["version"]
    seen = proxy_client.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
    return bool(seen["data"]["metadata"]["version"] == written)


def run(env: BenchEnv, profile: Profile) -> Figure:
    figure = Figure(1, "cached `get_secret` per call")
    config = env.vault_config(VAULT_CACHE_TTL=3600)
    client = VaultClient(settings=VaultSettings.load(config, {}))
    assert client.get_secret("flask", "secret_key") == FLASK_SECRET["secret_key"]
    app = Flask("bench_cached_read")
    app.config.update(config)
    FlaskVault(app)
    direct = _hvac_client(env.plain.url, env.plain.root_token)
    proxy = env.start_proxy()
    through_proxy = _hvac_client(proxy.url, "")  # no token: the proxy adds its auto-auth token
    with root_client(env.plain) as root:
        passes_through = _proxy_passes_through(root, through_proxy)
    rel = f"{PREFIX}/{ENVIRONMENT}/flask"
    secrets_dict = {"flask": dict(FLASK_SECRET)}
    namespace: dict[str, Any] = {
        "client": client,
        "module_get_secret": flask_vault.get_secret,
        "SECRETS": secrets_dict,
        "direct": direct,
        "through_proxy": through_proxy,
        "rel": rel,
    }
    n, h = profile.cached_calls, profile.http_calls
    samples: dict[str, list[float]] = {k: [] for k in ("cached", "module", "dict", "hvac", "proxy", "uncached")}
    statements = {
        "cached": ("client.get_secret('flask', 'secret_key')", n),
        "dict": ("SECRETS['flask']['secret_key']", n),
        "module": ("module_get_secret('flask', 'secret_key')", n),
        "hvac": (
            "direct.secrets.kv.v2.read_secret_version(path=rel, mount_point='secret', raise_on_deleted_version=True)",
            h,
        ),
        "proxy": (
            "through_proxy.secrets.kv.v2.read_secret_version(path=rel, mount_point='secret',"
            " raise_on_deleted_version=True)",
            h,
        ),
        "uncached": ("client.get_secret('flask', 'secret_key', use_cache=False)", h),
    }
    try:
        with app.app_context():
            for statement, _ in statements.values():  # warm every path (connections, caches)
                _per_call(statement, namespace, 3)
            for _ in range(profile.rounds):
                for key, (statement, number) in statements.items():
                    samples[key].append(_per_call(statement, namespace, number))
        parts = breakdown(client, profile)
    finally:
        for each in (client, app.extensions["vault"].client, direct, through_proxy):
            close(each)
    us = {key: Stat.of(values).scaled(1e6) for key, values in samples.items()}
    cached, plain, hv, px = us["cached"].median, us["dict"].median, us["hvac"].median, us["proxy"].median
    vs_hvac, vs_dict = hv / cached, cached / plain
    figure.measured = f"{num(cached)} µs"
    figure.compared = f"hvac {num(hv)} µs; bao proxy {num(px)} µs; dict {num(plain)} µs"
    figure.ratio = f"{ratio(vs_hvac)} faster than hvac; {ratio(vs_dict)} the dict"
    figure.target = f"≤ {TARGET_US:g} µs; ≥ {TARGET_VS_HVAC:,.0f}× hvac; ≤ {TARGET_VS_DICT:g}× dict"
    figure.met = cached <= TARGET_US and vs_hvac >= TARGET_VS_HVAC and vs_dict <= TARGET_VS_DICT
    figure.detail_header = ("per call", "µs: median (min–max over rounds)", "× cached get_secret")
    labels = {
        "cached": "`VaultClient.get_secret(name, field)`, warm cache",
        "module": "`flask_vault.get_secret(name, field)` in an app context",
        "dict": "plain dict `SECRETS[name][field]`",
        "hvac": "hvac `read_secret_version` (1 HTTP request)",
        "proxy": "hvac through `bao proxy` (2 hops)",
        "uncached": "`get_secret(..., use_cache=False)` (1 HTTP request)",
    }
    for key in ("cached", "module", "dict", "hvac", "proxy", "uncached"):
        figure.details.append((labels[key], us[key].fmt(), ratio(us[key].median / cached)))
    figure.details.extend(parts)
    figure.notes.append(
        f"{profile.rounds} rounds, interleaved; {n:,} cached calls and {h:,} HTTP reads per contender per round."
    )
    figure.notes.append(
        "bao proxy: `auto_auth` with a `token_file` method, a `cache {}` stanza and `api_proxy "
        "{ use_auto_auth_token = true }`, on a free loopback port. "
        + (
            "It passed KV v2 reads through to the server: a version written directly was returned by the "
            "very next read through the proxy."
            if passes_through
            else "A version written directly was NOT returned by the next read through the proxy (it cached it)."
        )
    )
    return figure


def breakdown(client: VaultClient, profile: Profile) -> list[tuple[str, ...]]:
    """Each step of a cached call timed alone (best of 3; µs), to show where the time goes."""
    path = client.full_path("flask")
    entry = client.read("flask")
    cache = client.cache
    namespace: dict[str, Any] = {
        "client": client,
        "cache": cache,
        "view": getattr(cache, "_view", None),
        "entries": getattr(cache, "_entries", None),
        "path": path,
        "entry": entry,
        "loader": lambda: entry,
        "check_secret_name": check_secret_name,
    }
    steps = [
        ("get_secret(name, field): the whole call", "client.get_secret('flask', 'secret_key')"),
        ("↳ read(name): known name, then cache.get", "client.read('flask')"),
        ("  ↳ cache.get(path, loader): lock-free view, age check, hit count", "cache.get(path, loader)"),
        ("    ↳ the view's dict lookup alone", "view.get(path)"),
        ("first use of a name only: full_path(name) (checks it, joins)", "client.full_path('flask')"),
        ("first use of a name only: check_secret_name(name)", "check_secret_name('flask')"),
        ("not on the hit path: the TTLCache store's lookup", "entries.get(path)"),
    ]
    number = max(1000, profile.cached_calls // 4)
    rows: list[tuple[str, ...]] = []
    for label, statement in steps:
        try:
            best = min(timeit.Timer(statement, globals=namespace).repeat(3, number)) / number * 1e6
        except Exception as exc:  # a renamed internal must not stop the run
            rows.append((f"breakdown: {label}", f"n/a ({type(exc).__name__})", ""))
            continue
        rows.append((f"breakdown: {label}", f"{num(best)} (best of 3)", ""))
    return rows
