"""Random spreads for what a fleet of processes would otherwise do at the same moment.

Processes started together (a deploy, a gunicorn master forking its workers) log in,
read, renew and retry together. Every wait that repeats (a retry's backoff, the wait a
429's ``Retry-After`` asks for, the renewal point, the refresh-ahead point, an outage
probe, the background lookup of a given token) is drawn from a window, so a herd that
met a rate limit or an outage once does not come back in the same millisecond again.

:data:`ENABLED` set to False makes every wait the window's fixed end (what the code did
before the spread): only the benchmark that measures what the spread is worth does that.
"""

from __future__ import annotations

import os
import random

#: False: no randomness anywhere (each function returns its window's fixed end).
ENABLED = True

# A generator of our own: background threads drawing from the module-level one would move
# the app's (possibly seeded) global random state under it. Reseeded in every forked
# child, as the module-level one is, so preforked workers do not draw the same waits.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def up_to(width: float) -> float:
    """A random amount between 0 and ``width`` (0 when jitter is off)."""
    if not ENABLED or width <= 0:
        return 0.0
    return _random.uniform(0.0, width)


def less(value: float, fraction: float) -> float:
    """``value`` less a random part of it, up to ``fraction`` (``value`` itself when jitter is off)."""
    return value - up_to(value * fraction)
