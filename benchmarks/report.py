"""Writing a benchmark's rows as CSV and as a markdown table (the docs include these files)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Sequence


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
