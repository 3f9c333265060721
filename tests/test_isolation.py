"""The suite's own isolation: what a test starts in the background ends with that test.

The two tests run in this order (file order). The first starts an app whose keeper has a
given token's lookup due in the background, on an address where nothing listens (so the
lookup fails and is retried as long as the keeper runs), and keeps a strong reference to
it, as a module-level app would. The second finds that keeper closed by the first test's
teardown (``close_test_spines`` in the top-level conftest.py) and no longer served by the
background thread: nothing it could send lands in a later test that counts requests.
"""

from __future__ import annotations

from typing import Any

import pytest
from core_support import init_vault, unused_url

from flask_vault.auth import renewal

#: The first test's keeper's spine.
_LEFT: list[renewal.Renewal[Any]] = []


def test_an_app_left_behind_has_its_keepers_lookup_due_in_the_background() -> None:
    app, _ = init_vault(
        {"VAULT_URL": unused_url(), "VAULT_TOKEN": "t", "VAULT_STARTUP_TIMEOUT": 0, "VAULT_MAX_RETRIES": 0},
        VAULT_SECRETS={},
    )
    spine = app.extensions["vault"].client.keeper.renewal
    thread = spine.thread
    assert spine in renewal.live() and thread is not None and thread.is_alive()
    _LEFT.append(spine)


def test_the_next_test_finds_that_keeper_closed_and_not_served_in_the_background() -> None:
    if not _LEFT:
        pytest.skip("checks what the test above left (run the module, not this test alone)")
    spine = _LEFT.pop()
    assert spine.stopped and spine not in renewal.live()
    assert spine.thread is None and not spine.needs_background()
