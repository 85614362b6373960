"""Register sb3_rtx's ``ppo_rtx`` with rl_zoo3 the moment rl_zoo3 is imported.

Why a hook: rl_zoo3 builds its ``--algo`` choices from ``rl_zoo3.utils.ALGOS`` when its argument
parser is created, before ``--gym-packages`` is imported, so a plain ``rl_zoo3 train --algo ppo_rtx``
can only work if ``ppo_rtx`` is in ALGOS before the parser exists.

The wheel installs this file at the top of site-packages as ``_sb3_rtx_autoregister.py`` with a
``sb3_rtx_zoo.pth`` whose single line imports it at interpreter start-up. It imports only the standard
library and adds one finder to ``sys.meta_path``; nothing heavy runs until a program imports rl_zoo3.
Set ``SB3_RTX_NO_ZOO_HOOK=1`` to turn it off (then use the ``sb3-rtx`` command, which registers
explicitly).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import warnings
from types import ModuleType
from typing import Any
from collections.abc import Sequence

WATCHED = "rl_zoo3"


def register_with_rl_zoo3() -> None:
    """Import sb3_rtx.zoo and register; never break rl_zoo3 for its own algorithms."""
    try:
        from sb3_rtx.zoo import register

        register()
    except Exception as error:
        warnings.warn(f"sb3_rtx could not register 'ppo_rtx' with rl_zoo3: {error!r}", stacklevel=2)


class _RegisterAfterExec(importlib.abc.Loader):
    """Runs rl_zoo3's own loader, then registers; afterwards the module carries its real loader."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        register_with_rl_zoo3()


class RlZooWatcher(importlib.abc.MetaPathFinder):
    """A one-shot finder: when rl_zoo3 is first imported, wrap its loader and step aside."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != WATCHED:
            return None
        uninstall()
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisterAfterExec(spec.loader)
        return spec


def uninstall() -> None:
    # by name: the wheel holds this file twice (top-level hook and sb3_rtx.zoo._autoregister)
    sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__name__ != RlZooWatcher.__name__]


def install() -> None:
    if os.environ.get("SB3_RTX_NO_ZOO_HOOK", "") not in ("", "0"):
        return
    if WATCHED in sys.modules:  # already imported (e.g. this module imported late): register now
        register_with_rl_zoo3()
        return
    uninstall()
    sys.meta_path.insert(0, RlZooWatcher())


install()
