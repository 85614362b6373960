"""Every code block of the docs and the README runs, so the examples users copy cannot rot.

Python blocks of one page run in order in one namespace (a page reads as one session); shell
blocks run with bash in a scratch directory. A few shell blocks are not run here, each for the
reason in :data:`NOT_RUN_HERE` (the command is what CI itself runs, it needs something this
machine does not have, or a behaviour test runs it and checks its outputs); the test checks that
every such entry still matches a block, so the list cannot silently hide new blocks.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from doc_blocks import ROOT, blocks, ran_ok, run_env, run_shell

RUN_BY_A_TEST = "{} runs this block and checks what it wrote"

#: shell blocks not run by this test: (page, a line the block contains) -> why
NOT_RUN_HERE = {
    ("installation.md", "pip install torch==2.13.0"): "the installation itself: .ci/run runs it first",
    (
        "README.md",
        "pip install torch==2.13.0",
    ): "the installation and main job: .ci/run installs, test_examples.py runs the job",
    ("installation.md", "python -m pytest -n 2"): "the test command itself",
    ("export.md", 'pip install -e ".[export]"'): "an installation: .ci/run installs [dev], which includes [export]",
    ("README.md", "python -m pytest -n 2"): "the test command itself",
    ("installation.md", "sphinx-build -W"): ".ci/run builds the docs with this command",
    ("README.md", "sphinx-build -W"): ".ci/run builds the docs with this command",
    (
        "tasks.md",
        "sb3_rtx/MysteryPath-Grid-v0",
    ): "the suites' full training budgets; tests/test_suites.py trains on each suite",
    ("zoo.md", "postgresql+psycopg2"): "needs a PostgreSQL server; tests/test_zoo.py runs a shared study on a private one",
    ("zoo.md", "optuna-dashboard"): "a web server that runs until stopped, and not installed by [dev]",
    ("zoo.md", "rl_zoo3.record_video"): RUN_BY_A_TEST.format("test_zoo.py::test_the_docs_train_enjoy_and_record_commands"),
    ("export.md", "sb3-rtx export"): RUN_BY_A_TEST.format("test_export.py::test_the_docs_export_commands_on_a_zoo_run"),
}


def skip_reason(page: str, code: str) -> str | None:
    for (name, needle), reason in NOT_RUN_HERE.items():
        if name == page and needle in code:
            return reason
    return None


PYTHON_PAGES = sorted({page for page, _ in blocks("python")})


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_of_a_page_run(page, tmp_path):
    code = "\n\n".join(code for name, code in blocks("python") if name == page)
    script = tmp_path / "page.py"
    script.write_text("import torch\ntorch.set_num_threads(1)\n" + code)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=run_env(), capture_output=True,
                            text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, f"{page}:\n{result.stderr[-3000:]}"


SHELL = [(page, code) for page, code in blocks("bash")]


@pytest.mark.parametrize("page, code", SHELL, ids=[f"{p}-{i}" for i, (p, _) in enumerate(SHELL)])
def test_shell_blocks_run(page, code, tmp_path):
    reason = skip_reason(page, code)
    if reason:
        pytest.skip(f"{page}: not run here: {reason}")
    ran_ok(run_shell(code, tmp_path), f"{page}:\n{code}")


def test_every_not_run_entry_still_matches_a_block():
    shell = blocks("bash")
    for page, needle in NOT_RUN_HERE:
        assert any(name == page and needle in code for name, code in shell), f"stale entry {page}: {needle!r}"


def test_readme_stays_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150
