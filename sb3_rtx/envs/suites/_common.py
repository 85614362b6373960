"""Helpers shared by the suite adapters: importing an optional package with a clear error."""

from __future__ import annotations

import importlib
from types import ModuleType

# what a user types to get each suite's package (the docs page "Memory tasks and suites" says the same)
INSTALL = {
    "memorygym": (
        'pip install "sb3-rtx[memorygym]" && pip install --no-deps "memory-gym==1.0.2"  '
        "(memory-gym 1.0.2 pins gymnasium==0.29.0, which sb3-rtx's gymnasium>=1.0 excludes, so pip "
        "cannot resolve it as an extra; it runs unchanged on gymnasium 1.x)"
    ),
    "memorymaze": 'pip install "sb3-rtx[memorymaze]"',
    "craftax": 'pip install "sb3-rtx[craftax]"',
    "popgym": 'pip install "sb3-rtx[popgym]"',
}


class SuiteNotInstalledError(ModuleNotFoundError):
    """A suite's package is missing; the message says what to install."""


def require(module: str, extra: str, suite: str) -> ModuleType:
    """Import ``module`` (a suite's package), or raise :class:`SuiteNotInstalledError` naming the extra.

    Only a missing ``module`` itself (or a parent of it) is turned into that error; an ImportError
    from inside an installed package (a broken dependency) is re-raised as it is, so its real
    cause stays visible.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing != module and not module.startswith(missing + "."):
            raise
        raise SuiteNotInstalledError(
            f"{suite} needs the Python package `{module}`, which is not installed. Install it with: {INSTALL[extra]}",
            name=module,
        ) from error
