"""One read for many callers, and not more often than an interval: the guard of every re-read
that untrusted input can trigger (a forged cookie, a refused database login).

``ThrottledFlight.run(func)`` runs ``func`` when no run is under way and the last one
started at least ``interval`` seconds ago; callers that arrive while a run is under way
wait for it and share its outcome; callers that arrive within the interval after it get
``False`` at once. So however many callers there are, ``func`` runs at most once per
``interval`` (plus one), one at a time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

log = logging.getLogger(__name__)


class ThrottledFlight:
    """Single-flight, rate-limited runs of a function; safe across ``fork()``."""

    def __init__(
        self,
        interval: float,
        *,
        join_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.interval = interval
        #: How long a caller waits for a run under way before giving up on it.
        self.join_timeout = join_timeout
        self.clock = clock
        self.sleep = sleep
        #: Runs started (``func`` calls), and calls refused because the interval had not passed.
        self.runs = 0
        self.throttled = 0
        self._last_start: float | None = None
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._flight: Future[bool] | None = None

    def run(self, func: Callable[[], object], *, wait: bool = False) -> bool:
        """Run ``func`` (or join the run under way); False when throttled or the run failed.

        ``wait``: instead of False, wait for the end of the interval and run (or join) then;
        for callers whose need is real (a refused database login), never for ones that
        untrusted input can trigger. ``func``'s exceptions are logged at debug level and
        become False: a caller that needed a fresh read gets none and goes on with what it has.
        """
        if self._pid != os.getpid():
            self._reset()  # a forked child: the parent's lock and flight mean nothing here
        while True:
            with self._lock:
                flight = self._flight
                leader = flight is None
                if flight is None:
                    now = self.clock()
                    if self._last_start is not None and now - self._last_start < self.interval:
                        self.throttled += 1
                        if not wait:
                            return False
                        delay = self._last_start + self.interval - now
                    else:
                        self._last_start = now
                        self.runs += 1
                        flight = self._flight = Future()
            if flight is not None:
                break
            self.sleep(min(delay, self.interval))
        if not leader:
            try:
                return flight.result(timeout=self.join_timeout)
            except FutureTimeout:
                return False
        ok = False
        try:
            func()
            ok = True
        except Exception as exc:
            log.debug("A throttled re-read failed (%s).", type(exc).__name__)
        finally:
            with self._lock:
                self._flight = None
            flight.set_result(ok)
        return ok
