"""Every code block of the docs and the README runs, so the examples users copy cannot rot.

Python blocks of one page run in order in one namespace (a page reads as one session); shell
blocks run with bash in a scratch directory. A few shell blocks are not run here, each for the
reason in :data:`NOT_RUN_HERE` (the command is what CI itself runs, or it needs something this
machine does not have); the test checks that every such entry still matches a block, so the list
cannot silently hide new blocks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```(python|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: shell blocks not run by this test: (page, a line the block contains) -> why
NOT_RUN_HERE = {
    ("installation.md", "pip install torch==2.13.0"): "the installation itself: .ci/run runs it first",
    ("README.md", "pip install torch==2.13.0"): "the installation and main job: .ci/run installs, test_examples.py runs the job",
    ("installation.md", "python -m pytest -n 2"): "the test command itself",
    ("export.md", 'pip install -e ".[export]"'): "an installation: .ci/run installs [dev], which includes [export]",
    ("README.md", "python -m pytest -n 2"): "the test command itself",
    ("installation.md", "sphinx-build -W"): ".ci/run builds the docs with this command",
    ("README.md", "sphinx-build -W"): ".ci/run builds the docs with this command",
    ("tasks.md", "sb3_rtx/MysteryPath-Grid-v0"): "the suites' full training budgets; tests/test_suites.py trains on each suite",
    ("zoo.md", "postgresql+psycopg2"): "needs a PostgreSQL server; tests/test_zoo.py runs a shared study on a private one",
    ("zoo.md", "optuna-dashboard"): "a web server that runs until stopped, and not installed by [dev]",
}


def blocks(language: str) -> list:
    found = []
    for page in PAGES:
        for match in FENCE.finditer(page.read_text()):
            if match.group(1) == language:
                found.append((page.name, match.group(2)))
    return found


def skip_reason(page: str, code: str) -> str | None:
    for (name, needle), reason in NOT_RUN_HERE.items():
        if name == page and needle in code:
            return reason
    return None


def run_env() -> dict:
    # one torch thread (pytest runs a worker per core); no display for pygame/rendering
    return {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip


PYTHON_PAGES = sorted({page for page, _ in blocks("python")})


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_of_a_page_run(page, tmp_path):
    code = "\n\n".join(code for name, code in blocks("python") if name == page)
    script = tmp_path / "page.py"
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=run_env(), capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, f"{page}:\n{result.stderr[-3000:]}"


SHELL = [(page, code) for page, code in blocks("bash")]


@pytest.mark.parametrize("page, code", SHELL, ids=[f"{p}-{i}" for i, (p, _) in enumerate(SHELL)])
def test_shell_blocks_run(page, code, tmp_path):
    reason = skip_reason(page, code)
    if reason:
        pytest.skip(f"{page}: not run here: {reason}")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=run_env(),
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, f"{page}:\n{code}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


def test_every_not_run_entry_still_matches_a_block():
    shell = blocks("bash")
    for (page, needle), reason in NOT_RUN_HERE.items():
        assert any(name == page and needle in code for name, code in shell), f"stale entry {page}: {needle!r}"


def test_readme_stays_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
