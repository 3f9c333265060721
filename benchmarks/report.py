"""The table: printed to the terminal and written to benchmarks/RESULTS.md."""

# ruff: noqa: RUF001, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

from collections.abc import Sequence

from .common import Figure


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
    return lines


def summary_table(figures: Sequence[Figure]) -> list[str]:
    rows = [
        (str(f.number), f.title, f.measured, f.compared, f.ratio, f.target, f.verdict)
        for f in sorted(figures, key=lambda f: f.number)
    ]
    return _table(("#", "figure", "flask-vault", "compared with", "ratio", "target", "result"), rows)


def markdown(figures: Sequence[Figure], info: dict[str, str], profile: str, command: str) -> str:
    lines = [
        "# flask-vault benchmarks",
        "",
        f"- date: {info['date']}",
        f"- Python: {info['python']}",
        f"- machine: {info['machine']}",
        f"- load average (1/5/15 min) at start: {info['load']}; at end: {info.get('load_end', '?')}",
        f"- server: {info['server']} dev server on 127.0.0.1 (in memory)",
        f"- libraries: {info['libraries']}",
        f"- run: `{command}` (profile `{profile}`, {info.get('duration', '?')})",
        "",
        "Each figure is measured side by side in the same run; the value is the median over rounds and the"
        " spread (min–max, n rounds) is given in the details. Other processes shared the machine (see the load"
        " average), so absolute times are noisy; the ratios were taken from interleaved rounds.",
        "",
        "## Summary",
        "",
        *summary_table(figures),
        "",
    ]
    for figure in sorted(figures, key=lambda f: f.number):
        lines += [f"## {figure.number}. {figure.title}", ""]
        if figure.details:
            lines += [*_table(figure.detail_header, figure.details), ""]
        lines += [f"- {note}" for note in figure.notes]
        lines += [f"- took {figure.seconds:.0f} s", ""]
    return "\n".join(lines).rstrip() + "\n"
