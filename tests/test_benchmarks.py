"""Smoke runs of the benchmarks' --quick modes, so they cannot rot (they assert no timings)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "module, table",
    [
        ("benchmarks.train_throughput", "train_throughput_quick.md"),
        ("benchmarks.cell_step", "cell_step.md"),
        ("benchmarks.zoo_scores", "zoo_scores_quick.md"),
    ],
)
def test_benchmark_quick_mode_writes_its_table(module, table, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        # one thread: pytest already runs a worker per core, more would oversubscribe them
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / table).read_text()
    assert text.startswith("# ") and text.count("\n|") >= 4
    assert (tmp_path / table.replace(".md", ".csv")).exists()
