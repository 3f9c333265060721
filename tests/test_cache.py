"""The client's cache: hits, expiry, read-through, clear, one read per path, thread safety.

Reads are counted two ways: the cache's own ``stats.reads`` and the audit trail's
records of ``read`` operations (one per HTTP read the client sends).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import hvac
import pytest
from core_support import FakeClock, client_for, wait_for, write_secret

from flask_vault import VaultClient, VaultSettings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def path(unique_env: str) -> str:
    return f"store-erp/{unique_env}/flask"


@pytest.fixture
def cached(base_config: dict[str, Any], unique_env: str, clock: FakeClock, vault_root: hvac.Client, path: str):
    """A client with a 60 s TTL on a fake clock, and a secret written by root."""
    write_secret(vault_root, path, {"secret_key": "v1", "jwt_secret": "jwt-1"})
    settings = VaultSettings.load({**base_config, "VAULT_ENVIRONMENT": unique_env, "VAULT_CACHE_TTL": 60}, {})
    return VaultClient(settings=settings, clock=clock)


@pytest.fixture
def audit_reads(caplog: pytest.LogCaptureFixture):
    """A function returning how many Vault reads the audit trail has recorded so far."""
    caplog.set_level(logging.INFO, logger="flask_vault.audit")

    def count() -> int:
        return sum(
            1
            for record in caplog.records
            if record.name == "flask_vault.audit" and getattr(record, "vault", {}).get("operation") == "read"
        )

    return count


def test_second_read_is_served_from_cache(cached: VaultClient, audit_reads) -> None:
    assert cached.get_secret("flask", "secret_key") == "v1"
    assert cached.get_secret("flask", "secret_key") == "v1"
    assert cached.cache.stats.reads == 1
    assert cached.cache.stats.hits == 1
    assert audit_reads() == 1


def test_one_read_serves_every_field_of_a_secret(cached: VaultClient, audit_reads) -> None:
    assert cached.get_secret("flask", "secret_key") == "v1"
    assert cached.get_secret("flask", "jwt_secret") == "jwt-1"
    assert cached.get_secret("flask") == {"secret_key": "v1", "jwt_secret": "jwt-1"}
    assert cached.cache.stats.reads == 1
    assert audit_reads() == 1


def test_cached_value_is_served_until_the_ttl_expires(
    cached: VaultClient, clock: FakeClock, vault_root: hvac.Client, path: str
) -> None:
    assert cached.get_secret("flask", "secret_key") == "v1"
    write_secret(vault_root, path, {"secret_key": "v2", "jwt_secret": "jwt-2"})
    clock.advance(30)  # half the TTL: still fresh (and before the refresh-ahead window)
    assert cached.get_secret("flask", "secret_key") == "v1"
    assert cached.cache.stats.reads == 1


def test_expired_entry_is_read_again_from_vault(
    cached: VaultClient, clock: FakeClock, vault_root: hvac.Client, path: str, audit_reads
) -> None:
    assert cached.get_secret("flask", "secret_key") == "v1"
    write_secret(vault_root, path, {"secret_key": "v2", "jwt_secret": "jwt-2"})
    clock.advance(61)
    assert cached.get_secret("flask", "secret_key") == "v2"
    assert cached.cache.stats.reads == 2
    assert audit_reads() == 2


def test_short_real_ttl_expires_against_the_real_server(
    base_config: dict[str, Any], unique_env: str, vault_root: hvac.Client, path: str
) -> None:
    write_secret(vault_root, path, {"secret_key": "v1"})
    client = client_for(base_config, VAULT_ENVIRONMENT=unique_env, VAULT_CACHE_TTL=0.2)
    assert client.get_secret("flask", "secret_key") == "v1"
    write_secret(vault_root, path, {"secret_key": "v2"})
    assert client.get_secret("flask", "secret_key") == "v1"  # within the TTL
    wait_for(lambda: client.get_secret("flask", "secret_key") == "v2", timeout=5)


def test_use_cache_false_reads_through_and_refreshes_the_entry(
    cached: VaultClient, vault_root: hvac.Client, path: str, audit_reads
) -> None:
    assert cached.get_secret("flask", "secret_key") == "v1"
    write_secret(vault_root, path, {"secret_key": "v2", "jwt_secret": "jwt-2"})
    assert cached.get_secret("flask", "secret_key") == "v1"
    assert cached.get_secret("flask", "secret_key", use_cache=False) == "v2"
    assert cached.cache.stats.reads == 2
    # The refreshed entry now serves cached reads without asking Vault again.
    assert cached.get_secret("flask", "jwt_secret") == "jwt-2"
    assert cached.cache.stats.reads == 2
    assert audit_reads() == 2


def test_use_cache_false_always_asks_vault(cached: VaultClient, audit_reads) -> None:
    for _ in range(3):
        cached.get_secret("flask", use_cache=False)
    assert audit_reads() == 3


def test_clear_cache_makes_the_next_read_ask_vault(
    cached: VaultClient, vault_root: hvac.Client, path: str, audit_reads
) -> None:
    assert cached.get_secret("flask", "secret_key") == "v1"
    write_secret(vault_root, path, {"secret_key": "v2"})
    cached.clear_cache()
    assert len(cached.cache) == 0
    assert cached.get_secret("flask", "secret_key") == "v2"
    assert audit_reads() == 2


def test_zero_ttl_disables_caching(base_config: dict[str, Any], seeded: dict, audit_reads) -> None:
    client = client_for(base_config, VAULT_CACHE_TTL=0)
    client.get_secret("flask")
    client.get_secret("flask")
    assert audit_reads() == 2


def test_cache_is_keyed_by_full_path(
    base_config: dict[str, Any], unique_env: str, vault_root: hvac.Client, audit_reads
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "scratch"})
    client = client_for(base_config, VAULT_ENVIRONMENT=unique_env)
    other = client_for(base_config)  # the seeded "test" environment
    assert client.get_secret("flask", "secret_key") == "scratch"
    assert other.get_secret("flask", "secret_key") == "test-secret-key-5f1c9e2a7b"
    assert client.cache.peek("secret/store-erp/test/flask") is None


def test_written_value_is_cached_without_a_read(cached: VaultClient, audit_reads) -> None:
    cached.set_secret("flask", {"secret_key": "written"})  # reads the current version first, to back it up
    after_write = audit_reads()
    assert cached.get_secret("flask", "secret_key") == "written"
    assert audit_reads() == after_write


def test_concurrent_misses_share_one_read(cached: VaultClient, audit_reads) -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=5)
            results.append(cached.get_secret("flask", "secret_key"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert results == ["v1"] * threads_count
    assert cached.cache.stats.reads == 1
    assert audit_reads() == 1


def test_cache_entry_repr_does_not_show_values(cached: VaultClient) -> None:
    cached.get_secret("flask")
    entry = cached.cache.peek(cached.full_path("flask"))
    assert entry is not None and entry.version == 1
    assert "jwt-1" not in repr(entry)
    assert "jwt-1" not in repr(cached.cache)


class _StaleOnceView(dict):
    """A view whose first lookup still answers with an expired entry, as a thread does that
    looked just before another thread's read stored the fresh one."""

    def __init__(self, data: dict, stale: Any) -> None:
        super().__init__(data)
        self._stale: Any = stale

    def get(self, key: Any, default: Any = None) -> Any:
        stale, self._stale = self._stale, None
        return stale if stale is not None else super().get(key, default)


def test_a_caller_that_saw_an_expired_entry_shares_the_read_that_just_finished() -> None:
    from flask_vault.cache import CachedSecret, SecretCache

    clock = FakeClock()
    cache = SecretCache(10, clock=clock)
    reads: list[int] = []

    def loader() -> CachedSecret:
        reads.append(1)
        return CachedSecret("secret/p", {"k": f"v{len(reads)}"}, len(reads), clock())

    cache.get("secret/p", loader)
    expired = cache.peek("secret/p")
    clock.advance(11)
    cache.get("secret/p", loader)  # another thread's read: the entry is fresh again
    cache._view = _StaleOnceView(cache._view, expired)

    entry = cache.get("secret/p", loader)

    assert entry.data == {"k": "v2"}
    assert len(reads) == 2
