"""``python -m benchmarks`` (``make bench``): every figure, one table, benchmarks/RESULTS.md.

    python -m benchmarks            # the full run (several minutes); writes benchmarks/RESULTS.md
    python -m benchmarks --quick    # shorter runs for development; prints, writes nothing by default
    python -m benchmarks --only 1,4 --quick
    python -m benchmarks --out /tmp/results.md

Starts its own OpenBao dev servers (and ``bao proxy``, and a gunicorn app server) on
127.0.0.1 and stops them at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from . import (
    cached_read,
    dynamic_switch,
    fleet_start,
    health_throughput,
    init_requests,
    memory,
    outage_latency,
    process_start,
    request_overhead,
    ttl_load,
)
from .common import PROFILES, BenchEnv, Figure, Profile, machine_info
from .report import markdown, summary_table

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

FIGURES: dict[int, tuple[str, Callable[[BenchEnv, Profile], Figure]]] = {
    1: ("cached get_secret per call", cached_read.run),
    2: ("init_app requests and time", init_requests.run),
    3: ("reads per minute under load", ttl_load.run),
    4: ("latency with Vault up/down/hung", outage_latency.run),
    5: ("/health/vault throughput", health_throughput.run),
    6: ("memory for cached secrets", lambda env, profile: memory.run(profile)),
    7: ("process start to app ready", process_start.run),
    8: ("throughput around a dynamic credential switch", dynamic_switch.run),
    9: ("added per request", request_overhead.run),
    10: ("a fleet started at once", fleet_start.run),
}


def run_figures(profile: Profile, numbers: Sequence[int], *, echo: bool = True) -> tuple[list[Figure], list[str]]:
    """Run the chosen figures against fresh servers; returns (figures, errors)."""
    figures: list[Figure] = []
    errors: list[str] = []
    with BenchEnv() as env:
        for number in numbers:
            title, func = FIGURES[number]
            if echo:
                print(f"[{number}] {title} ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            try:
                figure = func(env, profile)
            except Exception:
                errors.append(f"figure {number} ({title}) failed:\n{traceback.format_exc()}")
                if echo:
                    print(errors[-1], file=sys.stderr, flush=True)
                continue
            figure.seconds = figure.seconds or time.monotonic() - started
            figures.append(figure)
            if echo:
                print(
                    f"    {figure.measured} | {figure.ratio} | {figure.verdict} ({figure.seconds:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    return figures, errors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="shorter runs for development (10 s load, ...)")
    size.add_argument("--smoke", action="store_true", help="one tiny round of each figure (for the test suite)")
    parser.add_argument("--only", default="", help="comma-separated figure numbers (default: all)")
    parser.add_argument(
        "--out", type=Path, help="write the Markdown here (default: benchmarks/RESULTS.md on a full run)"
    )
    args = parser.parse_args(argv)
    profile = PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"]
    numbers = sorted({int(n) for n in args.only.split(",") if n.strip()} or FIGURES)
    unknown = [n for n in numbers if n not in FIGURES]
    if unknown:
        parser.error(f"no figure {unknown}; choose from {sorted(FIGURES)}")
    logging.basicConfig(level=logging.ERROR)  # the extension's outage warnings are expected in figure 4
    info = machine_info()
    started = time.monotonic()
    figures, errors = run_figures(profile, numbers)
    info["load_end"] = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    info["duration"] = f"{time.monotonic() - started:.0f} s"
    command = "python -m benchmarks" + (f" --{profile.name}" if profile.name != "full" else "")
    if args.only:
        command += f" --only {','.join(map(str, numbers))}"
    print("\n".join(summary_table(figures)))
    out = args.out or (RESULTS if profile.name == "full" and not args.only else None)
    if out is not None and figures:
        out.write_text(markdown(figures, info, profile.name, command))
        print(f"\nwrote {out}", file=sys.stderr)
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
