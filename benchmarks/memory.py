"""Figure 6: memory for 10,000 cached secrets.

Each measurement runs in a fresh child process (``python -m benchmarks.memory KIND N``),
so RSS starts from the same baseline:

* ``cache``: a ``VaultClient`` reads N secrets through its real read path
  (``client.read(name)``: cache, audit trail, metrics), with hvac's
  ``read_secret_version`` answering from a parsed copy of a real KV v2 response instead
  of the network, so no server holds 10,000 secrets and no socket buffers count;
* ``dict``: the same parsed responses' ``data`` kept in a plain dict (what hand-rolled
  caching with hvac keeps), as the baseline.

RSS growth comes from ``/proc/self/statm`` after ``gc.collect()``; the Python-level
allocation from ``tracemalloc`` in a separate run (tracing inflates RSS).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import ROOT, Figure, Profile, Stat, num, python, ratio

#: A KV v2 read answer as hvac returns it (two 64-character fields), formatted per secret.
RESPONSE_TEMPLATE = (
    '{"request_id":"8c2a0e7e-4a0b-4c64-9d5e-%(i)012d","lease_id":"","renewable":false,"lease_duration":0,'
    '"data":{"data":{"secret_key":"%(a)s","jwt_secret":"%(b)s"},"metadata":{"created_time":'
    '"2026-01-01T00:00:00.%(i)06dZ","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3}},'
    '"wrap_info":null,"warnings":null,"auth":null}'
)


def rss_bytes() -> int:
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return resident * os.sysconf("SC_PAGE_SIZE")


def child(kind: str, count: int, traced: bool) -> dict[str, Any]:
    import secrets
    import tracemalloc

    from flask_vault import VaultClient, VaultSettings

    def response(i: int) -> Any:
        return json.loads(RESPONSE_TEMPLATE % {"i": i, "a": secrets.token_urlsafe(48), "b": secrets.token_urlsafe(48)})

    settings = VaultSettings.load(
        {
            "VAULT_URL": "http://127.0.0.1:9",  # never contacted
            "VAULT_TOKEN": "not-a-real-token",
            "VAULT_PATH_PREFIX": "bench",
            "VAULT_ENVIRONMENT": "dev",
            "VAULT_CACHE_TTL": 3600,
        },
        {},
    )
    client = VaultClient(settings=settings)
    client.kv._version = 2  # no mount detection request
    pending: list[Any] = []
    kv2 = client.hvac.secrets.kv.v2
    kv2.read_secret_version = lambda **kwargs: pending.pop()  # type: ignore[method-assign]
    plain: dict[str, Any] = {}
    gc.collect()
    if traced:
        tracemalloc.start()
    base_rss = rss_bytes()
    base_traced = tracemalloc.get_traced_memory()[0] if traced else 0
    for i in range(count):
        name = f"app/secret-{i:05d}"
        if kind == "cache":
            pending.append(response(i))
            client.read(name)
        else:
            plain[name] = response(i)["data"]["data"]
    gc.collect()
    grown_rss = rss_bytes() - base_rss
    grown_traced = tracemalloc.get_traced_memory()[0] - base_traced if traced else 0
    entries = len(client.cache) if kind == "cache" else len(plain)
    return {"rss": grown_rss, "traced": grown_traced, "entries": entries, "base_rss": base_rss}


def _measure(kind: str, count: int, traced: bool) -> dict[str, Any]:
    output = subprocess.run(
        [python(), "-m", "benchmarks.memory", kind, str(count), "traced" if traced else "rss"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def run(profile: Profile) -> Figure:
    count = profile.memory_secrets
    figure = Figure(6, f"memory for {count:,} cached secrets")
    rounds = max(1, min(3, profile.rounds))
    rss: dict[str, list[float]] = {"cache": [], "dict": []}
    traced: dict[str, list[float]] = {"cache": [], "dict": []}
    base: list[float] = []
    entries = 0
    started = time.monotonic()
    for _ in range(rounds):
        for kind in ("cache", "dict"):
            result = _measure(kind, count, traced=False)
            rss[kind].append(result["rss"] / 2**20)
            if kind == "cache":
                base.append(result["base_rss"] / 2**20)
                entries = result["entries"]
            traced[kind].append(_measure(kind, count, traced=True)["traced"] / 2**20)
    cache_rss, dict_rss = Stat.of(rss["cache"]), Stat.of(rss["dict"])
    cache_traced, dict_traced = Stat.of(traced["cache"]), Stat.of(traced["dict"])
    per_secret = cache_traced.median * 2**20 / count
    figure.measured = (
        f"RSS +{num(cache_rss.median)} MiB (tracemalloc {num(cache_traced.median)} MiB, {num(per_secret)} B/secret)"
    )
    figure.compared = (
        f"plain dict of the same data: RSS +{num(dict_rss.median)} MiB (tracemalloc {num(dict_traced.median)} MiB)"
    )
    figure.ratio = ratio(cache_traced.median / dict_traced.median) + " (tracemalloc)"
    figure.target = "reported"
    figure.met = None
    figure.details = [
        ("entries cached", f"{entries:,}"),
        ("RSS growth, flask-vault cache, MiB", cache_rss.fmt()),
        ("RSS growth, plain dict, MiB", dict_rss.fmt()),
        ("tracemalloc growth, flask-vault cache, MiB", cache_traced.fmt()),
        ("tracemalloc growth, plain dict, MiB", dict_traced.fmt()),
        (
            "per secret (tracemalloc), cache vs dict, bytes",
            f"{num(per_secret)} vs {num(dict_traced.median * 2**20 / count)}",
        ),
        ("child RSS before filling (imports done), MiB", Stat.of(base).fmt()),
    ]
    figure.notes.append(
        f"{rounds} child process(es) per kind and method; each secret holds two 64-character fields, as parsed from"
        " a KV v2 answer. The cache keeps each entry twice by reference (the TTL map and the last-good map for"
        " stale-if-error), plus the entry object, path and metadata."
    )
    figure.seconds = time.monotonic() - started
    return figure


if __name__ == "__main__":
    kind_arg, count_arg, mode_arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    print(json.dumps(child(kind_arg, count_arg, mode_arg == "traced")))
