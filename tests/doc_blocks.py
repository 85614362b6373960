"""The code blocks of the docs and the README: found by page and a line they contain, and run as a
user runs them. ``test_docs.py`` runs every block; a test that needs a block's outputs to check a
behaviour runs that block itself (and ``test_docs.py`` skips it, naming the test), so the docs'
commands are what is checked and no command is run twice."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```(python|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[tuple[str, str]]:
    """(page name, code) of every ``language`` block, in page order."""
    found = []
    for page in PAGES:
        for match in FENCE.finditer(page.read_text()):
            if match.group(1) == language:
                found.append((page.name, match.group(2)))
    return found


def shell_block(page: str, needle: str) -> str:
    """The one bash block of ``page`` that contains ``needle``."""
    matches = [code for name, code in blocks("bash") if name == page and needle in code]
    assert len(matches) == 1, f"{page}: {len(matches)} bash blocks contain {needle!r}, expected 1"
    return matches[0]


def run_env() -> dict[str, str]:
    # one torch thread (pytest runs a worker per core); no display for pygame/rendering; the venv's
    # commands (rl_zoo3, sb3-rtx) first on PATH
    return {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip


def run_shell(code: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a bash block as a user pastes it (stopping at the first failing command)."""
    return subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=cwd, env=run_env(), capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def ran_ok(result: subprocess.CompletedProcess, code: str) -> str:
    """The block's output, after asserting it succeeded (with its tail if not)."""
    assert result.returncode == 0, f"{code}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr
