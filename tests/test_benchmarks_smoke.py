"""The benchmarks (``benchmarks/``, ``make bench``) each run one tiny round, so they don't rot.

Nothing here is timed or compared with a target: the figures are for ``make bench``
and benchmarks/RESULTS.md. This only checks that every figure runs end to end against
its own servers and reports something.
"""

from __future__ import annotations

import pytest

from benchmarks.__main__ import FIGURES, run_figures
from benchmarks.common import PROFILES, machine_info
from benchmarks.report import markdown

pytestmark = pytest.mark.slow  # about 15 s: two dev servers, bao proxy, gunicorn and a few child processes


def test_every_benchmark_runs_one_tiny_round_and_reports_a_figure() -> None:
    figures, errors = run_figures(PROFILES["smoke"], sorted(FIGURES), echo=False)

    assert not errors, "\n".join(errors)
    assert [figure.number for figure in figures] == sorted(FIGURES)
    for figure in figures:
        assert figure.measured and figure.compared and figure.details, figure.number
    text = markdown(figures, machine_info(), "smoke", "python -m benchmarks --smoke")
    assert "## Summary" in text and text.count("\n## ") == len(FIGURES) + 1
