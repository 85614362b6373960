"""Build and drive ``examples/aoti_cpp/run_policy.cpp``, the C++ program that runs an AOTInductor
package without Python: its input file format, its build against the libtorch that pip installed,
and its ``--time`` mode (what one acting step costs natively).

Used by :mod:`benchmarks.export_latency` (the ``aoti C++`` columns) and by the export tests (the
runner's actions and values against ``predict``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import BinaryIO
from collections.abc import Iterable

import numpy as np
import torch

SOURCE = Path(__file__).resolve().parent.parent / "examples" / "aoti_cpp" / "run_policy.cpp"
#: the steps file's dtype codes (see the runner's header comment)
DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.bool_): 1, np.dtype(np.int64): 2, np.dtype(np.uint8): 3}


def available() -> bool:
    """Whether the runner can be built here (it needs g++, as AOTInductor itself does)."""
    return shutil.which("g++") is not None


def write_tensor(file: BinaryIO, array: np.ndarray) -> None:
    """One tensor of a steps file: int64 ndim, int64 sizes, int64 dtype code, then its bytes."""
    array = np.ascontiguousarray(array)
    header = [array.ndim, *array.shape, DTYPE_CODES[array.dtype]]
    file.write(np.asarray(header, dtype=np.int64).tobytes() + array.tobytes())


def write_steps(path: Path, state: Iterable[np.ndarray], steps: Iterable[Iterable[np.ndarray]]) -> Path:
    """A steps file: the state the runner starts from, then each step's inputs (the observation
    inputs, then ``episode_start``)."""
    with path.open("wb") as file:
        for array in state:
            write_tensor(file, array)
        for inputs in steps:
            for array in inputs:
                write_tensor(file, array)
    return path


def build(out: Path) -> Path:
    """The runner compiled against the libtorch that pip installed (the docs' command); returns the binary."""
    torch_dir = Path(torch.__file__).parent
    binary = out / "run_policy"
    command = [
        "g++", "-std=c++20", "-O1", str(SOURCE), "-o", str(binary),
        f"-I{torch_dir / 'include'}", f"-I{torch_dir / 'include' / 'torch' / 'csrc' / 'api' / 'include'}",
        f"-L{torch_dir / 'lib'}", "-ltorch", "-ltorch_cpu", "-lc10", f"-Wl,-rpath,{torch_dir / 'lib'}",
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return binary


def run(binary: Path, package: Path, steps: Path, n_observations: int, n_state: int, *extra: str, threads: int = 1) -> str:
    """The runner's standard output, with a bare environment (no Python on its path) and ``threads``
    intra-op threads."""
    result = subprocess.run(
        [str(binary), str(package), str(steps), str(n_observations), str(n_state), *extra],
        capture_output=True, text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": str(threads)},
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"run_policy failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def median_step_ms(
    binary: Path, package: Path, steps: Path, n_observations: int, n_state: int, rounds: int, threads: int
) -> float:
    """The runner's ``--time`` mode: median ms of one acting step on the steps file's first inputs."""
    return float(run(binary, package, steps, n_observations, n_state, "--time", str(rounds), threads=threads))
