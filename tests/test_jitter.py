"""The random spreads (flask_vault.jitter): within their windows, fixed when turned off, drawn
from a generator of their own, and different in each forked worker."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap

import pytest

from flask_vault import jitter


def test_spreads_stay_within_their_windows_and_are_the_fixed_end_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = [jitter.up_to(2.0) for _ in range(200)]
    assert all(0.0 <= d <= 2.0 for d in draws) and len(set(draws)) > 100
    assert all(3.0 <= jitter.less(4.0, 0.25) <= 4.0 for _ in range(200))
    assert jitter.up_to(0.0) == 0.0 and jitter.up_to(-1.0) == 0.0
    monkeypatch.setattr(jitter, "ENABLED", False)
    assert (jitter.up_to(2.0), jitter.less(4.0, 0.25)) == (0.0, 4.0)


def test_the_apps_global_random_state_is_left_alone() -> None:
    state = random.getstate()
    for _ in range(10):
        jitter.up_to(1.0)
    assert random.getstate() == state


def test_forked_workers_draw_different_waits() -> None:
    code = textwrap.dedent(
        """
        import os
        from flask_vault import jitter

        jitter.up_to(1.0)  # the parent draws first, as a preloading master would
        draws = []
        for _ in range(3):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(write_end, repr(jitter.up_to(1.0)).encode())
                os._exit(0)
            os.close(write_end)
            with os.fdopen(read_end) as pipe:
                draws.append(pipe.read())
            os.waitpid(pid, 0)
        print(len(set(draws)))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
