"""Figure 7: process start to app ready, with the three keys filled from Vault vs hard-coded.

``python -m benchmarks.apps vault`` (FlaskVault, default mapping, a token given in
``VAULT_TOKEN``) and ``python -m benchmarks.apps bare`` (the same app, keys hard-coded)
are started in turn; the time is from ``Popen`` to the child's ``ready`` line. Then
``python -X importtime`` says what the imports cost, to tell whether hvac's dominates.
"""

# ruff: noqa: RUF001, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import time
from collections import defaultdict

from .common import ENVIRONMENT, PREFIX, ROOT, BenchEnv, Figure, Profile, Stat, num, python, ratio

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")
#: Top-level packages whose import cost is reported.
WATCHED = ("flask", "flask_vault", "hvac", "requests", "urllib3", "cachetools", "sqlalchemy", "prometheus_client")


def _child_env(env: BenchEnv) -> dict[str, str]:
    child = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    child.update(
        VAULT_URL=env.plain.url,
        VAULT_TOKEN=env.plain.root_token,
        VAULT_PATH_PREFIX=PREFIX,
        VAULT_ENVIRONMENT=ENVIRONMENT,
        PYTHONPATH=str(ROOT),
    )
    return child


def time_to_ready(args: list[str], env: dict[str, str]) -> float:
    """Seconds from ``Popen`` to the child's ``ready`` line (its exit is not counted)."""
    started = time.perf_counter()
    with subprocess.Popen(
        [python(), *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        elapsed = time.perf_counter() - started
        _, stderr = process.communicate(timeout=30)
    if line.strip() != b"ready":
        raise RuntimeError(f"{args} did not get ready: {stderr.decode(errors='replace')[-2000:]}")
    return elapsed


def import_costs(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Cumulative import time (ms) of each WATCHED package as first imported by ``python -X importtime ARGS``."""
    result = subprocess.run(
        [python(), "-X", "importtime", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    costs: dict[str, float] = {}
    total = 0.0
    for line in result.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        cumulative, indent, name = int(match.group(2)), len(match.group(3)), match.group(4)
        if indent <= 1:
            total += cumulative / 1000
        if name in WATCHED and name not in costs:
            costs[name] = cumulative / 1000
    costs["(all imports)"] = total
    return costs


def _import_steps() -> list[tuple[str, str]]:
    """What the vault app imports beyond a bare one, one package at a time (``python -c``)."""
    steps = [("flask", "flask"), ("+ hvac (with requests)", "hvac"), ("+ flask_vault (its own modules)", "flask_vault")]
    if importlib.util.find_spec("sqlalchemy"):
        steps.append(("+ sqlalchemy (the database URL is built with it)", "sqlalchemy.engine"))
    if importlib.util.find_spec("prometheus_client"):
        steps.append(("+ prometheus_client (metrics export, when installed)", "prometheus_client"))
    return [
        (label, "import " + ", ".join(module for _, module in steps[: i + 1])) for i, (label, _) in enumerate(steps)
    ]


def time_command(code: str, env: dict[str, str]) -> float:
    """Milliseconds from start to ready of ``python -c CODE`` (then it prints ``ready``)."""
    return time_to_ready(["-c", f"{code}; print('ready', flush=True)"], env) * 1000


def run(env: BenchEnv, profile: Profile) -> Figure:
    figure = Figure(7, "process start → app ready, 3 keys filled")
    child_env = _child_env(env)
    steps = _import_steps()
    times: dict[str, list[float]] = defaultdict(list)
    time_to_ready(["-m", "benchmarks.apps", "vault"], child_env)  # warm the OS page cache and .pyc files
    for _ in range(profile.start_rounds):
        for kind in ("bare", "vault"):
            times[kind].append(time_to_ready(["-m", "benchmarks.apps", kind], child_env) * 1000)
        times["python -c pass"].append(time_command("pass", child_env))
        for label, code in steps:
            times[label].append(time_command(code, child_env))
    stat = {key: Stat.of(values) for key, values in times.items()}
    vault, bare = stat["vault"].median, stat["bare"].median
    delta = vault - bare
    # Attribution from the fastest run of each (the one least disturbed by other load on the machine).
    fastest = {key: s.low for key, s in stat.items()}
    delta_fast = fastest["vault"] - fastest["bare"]
    costs = {label: fastest[label] - fastest[steps[i - 1][0]] for i, (label, _) in enumerate(steps) if i}
    rest = delta_fast - (fastest[steps[-1][0]] - fastest[steps[0][0]])
    hvac_cost = costs["+ hvac (with requests)"]
    importtime = import_costs(["-m", "benchmarks.apps", "vault"], child_env)
    figure.measured = f"{num(vault)} ms"
    figure.compared = f"bare Flask app {num(bare)} ms (interpreter alone {num(stat['python -c pass'].median)} ms)"
    figure.ratio = f"{ratio(vault / bare)} (+{num(delta)} ms)"
    figure.target = "reported (does hvac's import dominate?)"
    figure.met = None
    figure.detail_header = ("measure", "ms: median (min–max over rounds)", "fastest run: share of the difference")
    figure.details = [
        ("vault app: start → ready", stat["vault"].fmt(), f"{num(fastest['vault'])}"),
        ("bare app: start → ready", stat["bare"].fmt(), f"{num(fastest['bare'])}"),
        ("`python -c pass`", stat["python -c pass"].fmt(), ""),
        ("difference (vault − bare)", num(delta), f"{num(delta_fast)} = 100%"),
        (f"`python -c '{steps[0][1]}'`", stat[steps[0][0]].fmt(), ""),
    ]
    for label, code in steps[1:]:
        figure.details.append(
            (
                f"{label}: `{code}`",
                stat[label].fmt(),
                f"{'+' if costs[label] >= 0 else ''}{num(costs[label])} = {num(100 * costs[label] / delta_fast)}%",
            )
        )
    figure.details.append(
        (
            "the rest: the app module, building the app, init_app (4 Vault requests)",
            "",
            f"{num(rest)} = {num(100 * rest / delta_fast)}%",
        )
    )
    figure.details.append(
        (
            "cross-check, `-X importtime` of the vault app (cumulative ms, first importer)",
            ", ".join(f"{name} {num(cost)}" for name, cost in importtime.items()),
            "",
        )
    )
    figure.notes.append(
        f"{profile.start_rounds} rounds, interleaved. Start → ready is from `Popen` to the child's `ready` line"
        " (its exit is not counted), for the apps and for `python -c 'import ...; print(\"ready\")'` runs that"
        " add one package at a time; import costs are the differences, from the fastest of the rounds (the one"
        " least disturbed by other processes)."
    )
    biggest = max(costs, key=lambda k: costs[k])
    dominates = hvac_cost >= 0.5 * delta_fast
    figure.notes.append(
        f"hvac's import (with requests) costs {num(hvac_cost)} ms of the {num(delta_fast)} ms difference"
        f" ({num(100 * hvac_cost / delta_fast)}%): it {'dominates' if dominates else 'does not dominate'}; the"
        f" largest step is {biggest.lstrip('+ ')} ({num(costs[biggest])} ms)."
        + (
            " flask_vault.database imports SQLAlchemy to build the URL when it is installed; an app that uses"
            " Flask-SQLAlchemy imports it anyway, so it is not a cost of the extension there."
            if "sqlalchemy" in biggest
            else ""
        )
    )
    return figure
