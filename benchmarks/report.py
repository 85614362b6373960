"""Writing a benchmark's rows as CSV and as a markdown table (the docs include these files)."""

from __future__ import annotations

import csv
import platform
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

#: flags that change how a benchmark makes its table, not what is in it
HOW_NOT_WHAT = ("--resume", "--report-only")
#: the same, with values: ``--reuse-runs FILE...`` takes finished runs from other files instead of
#: training them again (the same runs: seeded and deterministic)
HOW_NOT_WHAT_WITH_VALUES = ("--reuse-runs",)


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """The whole command that remakes a table: ``python -m <module>`` and every flag it was given
    (``argv``, or the process's own), except those of :data:`HOW_NOT_WHAT` and
    :data:`HOW_NOT_WHAT_WITH_VALUES` (with their values)."""
    given: list[str] = []
    skipping = False
    for argument in sys.argv[1:] if argv is None else argv:
        if argument.startswith("--"):
            skipping = argument in HOW_NOT_WHAT_WITH_VALUES
            if skipping or argument in HOW_NOT_WHAT or argument.split("=")[0] in HOW_NOT_WHAT_WITH_VALUES:
                continue
        if not skipping:
            given.append(argument)
    return shlex.join(["python", "-m", module, *given])


def machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU a table was made on: its model name where the system says it (Linux's ``cpuinfo``),
    with the architecture, else the architecture alone. Timing ratios between cells depend on the
    CPU model, not only on its architecture (one x86_64 CPU's matrix products can be much faster
    against its element-wise passes than another's), so every timed table names it."""
    arch = platform.machine() or platform.processor() or "unknown architecture"
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return arch
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model") and value.strip():
            return f"{value.strip()} ({arch})"
    return arch


def write_report(
    rows: Sequence[dict],
    out_dir: Path,
    name: str,
    title: str,
    description: str,
    columns: Sequence[tuple[str, Callable[[dict], str]]],
) -> str:
    """Write ``out_dir/name.csv`` (all fields) and ``out_dir/name.md`` (the given columns); return the table.

    :param columns: (header, cell formatter) pairs; a header ending in ``:`` is left-aligned text
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{name}.csv", "w", newline="") as f:
        # every field of every row, in first-seen order (rows may carry optional fields)
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    headers = [h.rstrip(":") for h, _ in columns]
    aligns = ["---" if h.endswith(":") else "---:" for h, _ in columns]
    lines = [f"# {title}", "", description, "", "| " + " | ".join(headers) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(fmt(row) for _, fmt in columns) + " |" for row in rows]
    table = "\n".join(lines) + "\n"
    (out_dir / f"{name}.md").write_text(table)
    return table
