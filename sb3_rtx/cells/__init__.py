"""Recurrent sequence cells behind one interface (no Stable-Baselines3 imports here).

>>> from sb3_rtx.cells import make_cell
>>> cell = make_cell("agalite", input_dim=8, n_layers=2, d_model=64)
>>> state = cell.initial_state(batch_size=4)
"""

from __future__ import annotations

import inspect
from numbers import Integral
from typing import Any

from sb3_rtx.cells.agalite import AGaLiTe
from sb3_rtx.cells.base import CellState, RecurrentCell, check_positive_int
from sb3_rtx.cells.galite import GaLiTe
from sb3_rtx.cells.gtrxl import GTrXL
from sb3_rtx.cells.lstm import LSTM

#: cell name -> class, the names accepted by :func:`make_cell`
CELLS: dict[str, type[RecurrentCell]] = {cls.name: cls for cls in (GaLiTe, AGaLiTe, GTrXL, LSTM)}


def cell_keywords(name: str) -> tuple[str, ...]:
    """The size keywords a cell accepts (everything but ``input_dim``)."""
    cls = _lookup(name)
    return tuple(p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "input_dim"))


def _lookup(name: str) -> type[RecurrentCell]:
    if not isinstance(name, str) or name.lower() not in CELLS:
        raise ValueError(f"unknown cell {name!r}; valid cells are: {', '.join(sorted(CELLS))}")
    return CELLS[name.lower()]


def check_cell_kwargs(name: str, kwargs: dict[str, Any], prefix: str = "") -> None:
    """Check a cell's name and size keywords without building it; errors name the offending key.

    Every keyword whose default is an int (``n_layers``, ``eta``, ``r``, ``memory_len``, ...) must be a
    positive int. ``prefix`` is prepended to key names in messages (e.g. ``"policy_kwargs.cell_kwargs."``).
    """
    cls = _lookup(name)
    parameters = inspect.signature(cls.__init__).parameters
    valid = cell_keywords(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        named = [prefix + key for key in unknown]
        raise TypeError(f"cell {name!r} got unknown keyword(s) {named}; it accepts: {', '.join(valid)}")
    sizes = {prefix + key: value for key, value in kwargs.items() if _is_int_default(parameters[key].default)}
    check_positive_int(cls.__name__, **sizes)


def _is_int_default(default: Any) -> bool:
    return isinstance(default, int) and not isinstance(default, bool)


def make_cell(name: str, input_dim: int, **kwargs: Any) -> RecurrentCell:
    """Build a cell by name (``"galite"``, ``"agalite"``, ``"gtrxl"``, ``"lstm"``).

    :param name: cell name (case-insensitive)
    :param input_dim: size of each input vector
    :param kwargs: the cell's size keywords, e.g. ``n_layers``, ``d_model``, ``n_heads``, ``d_head``,
        ``d_ffc``, ``eta``, ``r``, ``memory_len`` (GTrXL), ``hidden_size`` (LSTM)
    """
    cls = _lookup(name)
    check_cell_kwargs(name, kwargs)
    # numpy ints (from SB3 spaces, yaml or Optuna) become plain ints: torch modules reject them
    kwargs = {k: int(v) if isinstance(v, Integral) and not isinstance(v, bool) else v for k, v in kwargs.items()}
    if isinstance(input_dim, Integral) and not isinstance(input_dim, bool):
        input_dim = int(input_dim)
    return cls(input_dim, **kwargs)


__all__ = [
    "CELLS",
    "LSTM",
    "AGaLiTe",
    "CellState",
    "GTrXL",
    "GaLiTe",
    "RecurrentCell",
    "cell_keywords",
    "check_cell_kwargs",
    "make_cell",
]
