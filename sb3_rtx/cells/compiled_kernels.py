"""``torch.compile`` kernels for ``compile_training``, with an eager fallback where compiling fails.

AGaLiTe's compiled training form (:meth:`~sb3_rtx.cells.base.RecurrentCell.compile_training`) runs
a few functions, written as plain tensor expressions, through ``torch.compile`` (inductor: C++ loops
on a CPU, Triton on a GPU): the key side's per-group work (:mod:`~sb3_rtx.cells.compiled_key_side`),
the value side's per-block scan and read (:mod:`~sb3_rtx.cells.compiled_values`) and the value
convolution (:mod:`~sb3_rtx.cells.compiled_convolution`). Each is a
:class:`Kernel`; they share one failure flag per kernel, which :func:`compiling_failed` reads and
:func:`retry_compiling` clears.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from sb3_rtx.cells.base import is_compile_failure


class Kernel:
    """``function`` through ``torch.compile``, compiled on first use; eager from then on if compiling
    fails (until :func:`retry_compiling`). ``part`` names what it computes in the warning."""

    def __init__(self, function: Callable[..., Any], part: str) -> None:
        self.function, self.part = function, part
        self.compiled: Callable[..., Any] | None = None
        self.failed = False
        _KERNELS.append(self)

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return self.function(*args)
        if self.compiled is None:
            # one kernel per shape (a training run meets a few: its minibatch's groups, a smaller last
            # group): kernels compiled for dynamic sizes ran slower than the eager form
            self.compiled = torch.compile(self.function, dynamic=False)
        try:
            return self.compiled(*args)
        except Exception as error:  # no C++ compiler, an unsupported backend, ...
            if not is_compile_failure(error):
                raise
            warnings.warn(
                f"compile_training: torch.compile failed ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}); {self.part} trains eagerly",
                RuntimeWarning,
                stacklevel=2,
            )
            self.failed = True
            return self.function(*args)


_KERNELS: list[Kernel] = []


def compiling_failed() -> bool:
    """Whether compiling a kernel failed in this process (its eager form runs instead)."""
    return any(kernel.failed for kernel in _KERNELS)


def retry_compiling() -> None:
    """Forget an earlier failure: the next call compiles again (a cell's ``compile_training`` calls this)."""
    for kernel in _KERNELS:
        kernel.failed = False
