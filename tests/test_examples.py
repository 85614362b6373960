"""The examples users copy still run (tiny budgets; what they learn is tested in test_ppo.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    "script, args, expected",
    [
        ("quickstart.py", ["--timesteps", "512"], "hand-run episode: reward"),
        ("custom_loop.py", ["--timesteps", "256", "--episodes", "8"], "success rate over"),
        # the play loop runs in its own process and fails if it imported torch, SB3 or sb3_rtx
        ("export_onnx.py", ["--timesteps", "512"], "same episode as PyTorch"),
    ],
)
def test_example_runs(script, args, expected, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        cwd=tmp_path,  # where an example writes its files
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # one thread per pytest worker
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout
