"""HA: a 3-node OpenBao Raft cluster loses its active node mid-run.

The app lists all three addresses in VAULT_URL. After SIGKILL of the active node the
client fails over on connection errors, serves from cache while the cluster elects a
new leader, and reads fresh values again. The recovery time is reported (stdout and
the JUnit property ``fresh_read_after_kill_s``), bounded by the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from flask_vault import FlaskVault
from flask_vault.devserver import RaftCluster
from tests.conftest import FLASK_SECRET, PREFIX

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ENV = "cluster"
RECOVERY_BOUND = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[RaftCluster]:
    with RaftCluster(3) as cluster:
        active = cluster.active_node()
        active.root_client().secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{ENV}/flask", FLASK_SECRET)
        yield cluster


def test_killing_the_active_node_fails_no_request_and_fresh_reads_resume(
    cluster: RaftCluster, record_property: Any
) -> None:
    app = Flask("cluster")
    app.config.update(
        VAULT_URL=",".join(cluster.urls),
        VAULT_TOKEN=cluster.root_token,
        VAULT_PATH_PREFIX=PREFIX,
        VAULT_ENVIRONMENT=ENV,
        VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"},
        VAULT_CACHE_TTL=1,
        VAULT_TIMEOUT=1,
        VAULT_STARTUP_TIMEOUT=0,
    )

    @app.get("/work")
    def work() -> dict[str, int]:
        from flask_vault import get_secret

        return {"length": len(get_secret("flask", "secret_key"))}

    vault = FlaskVault(app)
    web = app.test_client()
    with app.app_context():
        stats = vault.client.cache.stats
    assert web.get("/work").status_code == 200

    victim = cluster.active_node()
    reads_at_kill, stale_at_kill = stats.reads, stats.stale_serves + stats.served_while_refreshing
    victim.kill()
    killed_at = time.monotonic()

    statuses: list[int] = []
    recovered_after: float | None = None
    while time.monotonic() - killed_at < RECOVERY_BOUND:
        statuses.append(web.get("/work").status_code)
        # A fresh read after the kill is one that reached a surviving node.
        if recovered_after is None and stats.reads > reads_at_kill + 1:
            recovered_after = time.monotonic() - killed_at
        if recovered_after is not None and time.monotonic() - killed_at > recovered_after + 2:
            break
        time.sleep(0.02)

    served_from_cache = stats.stale_serves + stats.served_while_refreshing - stale_at_kill
    print(
        f"\ncluster failover: {len(statuses)} requests, {statuses.count(200)} ok, "
        f"fresh read {recovered_after if recovered_after is None else round(recovered_after, 2)} s after the kill, "
        f"{served_from_cache} answers from cache meanwhile; "
        f"now on {app.extensions['vault'].client.url} (killed {victim.url})"
    )
    record_property("fresh_read_after_kill_s", recovered_after)
    assert statuses and all(status == 200 for status in statuses)
    assert recovered_after is not None, f"no fresh read within {RECOVERY_BOUND}s"
    assert app.extensions["vault"].client.url != victim.url

    new_leader = cluster.active_node()
    new_value = "after-failover-" + "k" * 40
    new_leader.root_client().secrets.kv.v2.create_or_update_secret(
        f"{PREFIX}/{ENV}/flask", {**FLASK_SECRET, "secret_key": new_value}
    )
    deadline = time.monotonic() + 10
    while app.config["SECRET_KEY"] != new_value and time.monotonic() < deadline:
        assert web.get("/work").status_code == 200
        time.sleep(0.05)
    assert app.config["SECRET_KEY"] == new_value
