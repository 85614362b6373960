"""Checking an env's ``gym.make`` keywords, so a bad value fails at ``gym.make`` naming the keyword."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_int_keyword(env: str, name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or a ValueError naming the env and keyword (bools are not ints here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{env}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)
