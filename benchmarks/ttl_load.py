"""Figure 3: Vault reads per minute from 50 threads calling ``get_secret`` with a 2 s TTL.

One ``VaultClient`` (``VAULT_CACHE_TTL=2``) on the audited server; 50 threads call
``get_secret`` for the three keys of the default mapping (two paths) in a tight loop for
60 s (``--quick``: 10 s). Reads are counted as they leave the process and as Vault's
audit device saw them. The bound the target allows: one read per path per 0.9 × TTL
(the earliest refresh-ahead point), plus one.
"""

# ruff: noqa: RUF001, RUF002

from __future__ import annotations

import threading
import time
from collections import Counter
from itertools import pairwise

from flask_vault import VaultClient, VaultSettings
from flask_vault.cache import REFRESH_AHEAD_FRACTION, REFRESH_AHEAD_SPREAD

from .common import DEFAULT_KEYS, BenchEnv, Figure, Profile, RequestLog, close, is_kv_read, num, ratio

#: Upper bound on calls per thread, so the loop is bounded in count as well as time.
MAX_CALLS_PER_THREAD = 50_000_000


def run(env: BenchEnv, profile: Profile) -> Figure:
    figure = Figure(3, f"Vault reads/min, {profile.load_threads} threads, TTL {profile.load_ttl:g} s")
    ttl, seconds, threads = profile.load_ttl, profile.load_seconds, profile.load_threads
    config = env.vault_config(env.audited, VAULT_CACHE_TTL=ttl)
    client = VaultClient(settings=VaultSettings.load(config, {}))
    paths = sorted({client.full_path(name) for name, _ in DEFAULT_KEYS})
    # /v1/secret/data/bench/dev/flask (what the request names) -> secret/bench/dev/flask
    api_path = {
        f"/v1/{client.mount_point}/data/{client.secret_path(name)}": client.full_path(name) for name, _ in DEFAULT_KEYS
    }
    calls = [0] * threads
    errors: Counter[str] = Counter()
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        keys = DEFAULT_KEYS[index % len(DEFAULT_KEYS) :] + DEFAULT_KEYS[: index % len(DEFAULT_KEYS)]
        start.wait()
        deadline = stop_at[0]
        count = 0
        get_secret = client.get_secret
        monotonic = time.monotonic
        while count < MAX_CALLS_PER_THREAD and monotonic() < deadline:
            for name, field in keys:
                try:
                    get_secret(name, field)
                except Exception as exc:  # counted and reported, never hidden
                    errors[type(exc).__name__] += 1
            count += len(keys)
        calls[index] = count

    workers = [threading.Thread(target=worker, args=(i,), name=f"bench-load-{i}", daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    audit_mark = env.audit.mark()
    with RequestLog(env.audited.port) as log:
        began = time.monotonic()
        stop_at[0] = began + seconds
        start.wait()
        for thread in workers:
            thread.join(timeout=seconds + 30)
        elapsed = time.monotonic() - began
        time.sleep(min(1.0, ttl))  # let a background refresh started at the very end finish and be counted
    time.sleep(0.1)
    stats = client.cache.stats.as_dict()
    close(client)
    stuck = sum(1 for thread in workers if thread.is_alive())
    reads = Counter(api_path.get(r.path, r.path) for r in log.sent if is_kv_read(r))
    server_reads = env.audit.count_since(audit_mark, "secret/data/", operation="read")
    total_reads = sum(reads.values())
    window = REFRESH_AHEAD_FRACTION * ttl
    per_path_bound = int(elapsed // window) + 1
    minutes = elapsed / 60
    reads_per_min = total_reads / minutes / len(paths)
    bound_per_min = per_path_bound / minutes
    worst_path = max(reads.values(), default=0)
    # Reads of a path that follow its previous read by less than a tenth of the TTL: duplicates.
    by_path: dict[str, list[float]] = {}
    for r in log.sent:
        if is_kv_read(r):
            by_path.setdefault(api_path.get(r.path, r.path), []).append(r.started)
    duplicates = 0
    for times in by_path.values():
        ordered = sorted(times)
        duplicates += sum(1 for a, b in pairwise(ordered) if b - a < ttl / 10)
    spaced = total_reads - duplicates

    figure.measured = (
        f"{num(reads_per_min)} reads/min per path ({total_reads} reads in {elapsed:.0f} s, {len(paths)} paths)"
    )
    figure.compared = f"bound {num(bound_per_min)}/min per path (≤ {per_path_bound} per path in {elapsed:.0f} s)"
    figure.ratio = ratio(worst_path / per_path_bound)
    figure.target = f"≤ 1 read per path per {REFRESH_AHEAD_FRACTION:g} × TTL (+1); no duplicate reads"
    figure.met = worst_path <= per_path_bound and not duplicates and not errors and not stuck
    total_calls = sum(calls)
    figure.details = [
        ("duration, threads, TTL", f"{elapsed:.1f} s, {threads} threads, {ttl:g} s"),
        ("get_secret calls (all threads)", f"{total_calls:,} ({num(total_calls / elapsed)}/s)"),
        ("errors", ", ".join(f"{k}: {v}" for k, v in errors.items()) or "0"),
        ("Vault reads sent, per path", ", ".join(f"{p}: {reads.get(p, 0)}" for p in paths)),
        ("Vault reads seen by Vault (audit device)", str(server_reads)),
        (f"allowed per path (elapsed // ({REFRESH_AHEAD_FRACTION:g} × TTL) + 1)", str(per_path_bound)),
        ("reads within TTL/10 of the previous read of the same path (duplicates)", f"{duplicates} of {total_reads}"),
        ("reads/min per path without the duplicates", num(spaced / minutes / len(paths))),
        (
            "other requests",
            ", ".join(f"{k}: {v}" for k, v in log.by_endpoint().items() if "/secret/data/" not in k) or "none",
        ),
        (
            "cache: hits, misses, background refreshes, served while refreshing",
            f"{stats['hits']:,}, {stats['misses']:,}, {stats['background_refreshes']:,},"
            f" {stats['served_while_refreshing']:,}",
        ),
    ]
    if stuck:
        figure.details.append(("threads still running at the end", str(stuck)))
    if duplicates:
        figure.notes.append(
            f"{duplicates} of the {total_reads} reads came within {ttl / 10:g} s of the previous read of the same"
            " path: more than one background refresh of one entry (flask_vault/cache.py should start one)."
        )
    figure.notes.append(
        "Refresh-ahead re-reads an entry once it has lived"
        f" {REFRESH_AHEAD_FRACTION:g} to {REFRESH_AHEAD_FRACTION + REFRESH_AHEAD_SPREAD:g} of its TTL (a point drawn"
        " at random for each read, flask_vault.cache.REFRESH_AHEAD_FRACTION and REFRESH_AHEAD_SPREAD), so that a"
        " request never waits on Vault for a secret it has and processes started together drift apart; under"
        f" steady load a path is read at most every {REFRESH_AHEAD_FRACTION:g} × TTL plus one read's latency:"
        f" at most {num(60 / (REFRESH_AHEAD_FRACTION * ttl))}/min per path at TTL {ttl:g} s,"
        f" {1 / REFRESH_AHEAD_FRACTION:.2f}× one read per TTL, by design."
    )
    detections = log.count(lambda r: "/sys/internal/ui/mounts/" in r.path)
    if detections > 1:
        figure.notes.append(
            f"The KV version of the mount was detected {detections} times: the first reads of the two paths ran"
            " at once and `VaultClient.kv_version()` holds no lock while it asks, so each asked."
        )
    return figure
