"""Test-wide settings."""

import pytest
import torch

# pytest runs with -n 2 (one worker per core); torch's own thread pool on top of that
# oversubscribes the cores and OpenMP's spin-waiting can make runs 10x slower. Tests time nothing.
torch.set_num_threads(1)


def needs_compiler():
    """Skip (with the reason) where torch.compile cannot build CPU kernels: no C++ compiler.

    Where one exists, tests that claim compiled acting must see it run: they also turn the
    fallback's RuntimeWarning into an error (``filterwarnings``) and check ``acting_compiled``
    after acting, so a silent fall back to eager fails them instead of passing."""
    import shutil

    import pytest

    if not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("no C++ compiler: torch.compile cannot build CPU kernels here (.ci/run installs g++)")


@pytest.fixture
def accelerator_paths(monkeypatch):
    """Run the training forms' accelerator paths (fewest ops: one group, one block, the doubling
    scan, ``cumprod``) on the CPU, so they are checked where no GPU is."""
    from sb3_rtx.cells import factored_attention, galite, oscillating_values, scan

    for module in (scan, factored_attention, oscillating_values, galite):
        monkeypatch.setattr(module, "launch_bound", lambda device: True)
