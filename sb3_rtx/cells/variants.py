"""What GaLiTe's and AGaLiTe's variants mean, in one place: every choice and its valid values, what
each variant sets, how a cell's keywords resolve against its variant, and what a saved model
records of them.

``variant="paper"`` is the paper's design as published; ``variant="default"`` is the library's,
each of its changes a measured cause of failing to learn memory (docs, "Cells" says what each
choice does, "Learning memory" what each measured). A keyword given explicitly overrides the
variant's choice, one at a time, which is how the benchmarks isolate them.

Nothing here computes: the cells (:mod:`~sb3_rtx.cells.galite`, :mod:`~sb3_rtx.cells.agalite`,
:mod:`~sb3_rtx.cells.block`) implement each value, and import the names from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: every string choice -> its valid values
CHOICES: dict[str, tuple[str, ...]] = {
    # the read's divisor: the paper's ``s . q + eps``, or xLSTM's ``max(s . q, 1)``
    "normaliser": ("sum", "bounded"),
    # the gates' biases at initialisation (the memory's span), galite.GATE_INIT_BIAS and after
    "gate_init": ("zero", "slow", "slower", "long", "multiscale", "per_head", "long_first"),
    # the feature map of keys and queries
    "feature_map": ("relu", "softplus"),
    # each head's read divided by its root mean square before the output projection, or not
    "read_norm": ("rms", "none"),
    # how the block adds the read to its stream: GTrXL's GRU gate, or a plain residual
    "read_merge": ("gated", "residual"),
    # what the first layer's memory reads: LN of the embedded stream, the observation itself, or both
    # side by side (the observation's features, then LN of the stream), or the observation with each
    # dimension standardised by the cell's running statistics of it, or only divided by its running
    # root mean square
    "memory_input": ("stream", "observation", "both", "standardised", "scaled"),
    # AGaLiTe only: the oscillators' frequencies, and what ``s . q`` is multiplied by in the read
    "frequencies": ("reference", "distinct", "dc"),
    "read_scale": ("2r", "power"),
    # how the value convolution and its direct path start: the identity and a closed path (a fresh
    # cell computes what it did without them; an option), Mamba's (random taps, the path open; an
    # option) or anchored (Mamba's with the current tap at 1; both default variants', adopted on the
    # development set, AGaLiTe's over ten seeds, then GaLiTe's: docs, "Learning memory")
    "value_conv_init": ("identity", "mamba", "anchored"),
    # how strongly each step is written: as strongly as the gates decay the memory (the paper's), or
    # times a data-dependent strength per head, exp of a bounded projection of the input (a selective
    # write: mLSTM's exponential input gate, with the normaliser that divides it out of the read)
    "write_gate": ("none", "exp"),
}
#: choices only AGaLiTe has
AGALITE_ONLY = ("frequencies", "read_scale")
#: the integer choice: taps of the values' short convolution over time (1 = none); see short_conv.py
VALUE_CONV = "value_conv"
#: taps of the default variant's value convolution: the current step and three before it, the size
#: later linear recurrences use (Mamba's ``d_conv``, flash-linear-attention's ``conv_size``), not tuned here
VALUE_CONV_TAPS = 4
#: ``variant`` -> what it sets, for both cells
VARIANTS: dict[str, dict[str, Any]] = {
    "default": dict(
        normaliser="sum",
        gate_init="long",
        feature_map="softplus",
        read_norm="rms",
        read_merge="residual",
        memory_input="observation",
        value_conv=VALUE_CONV_TAPS,
        value_conv_init="anchored",
    ),
    "paper": dict(
        normaliser="sum",
        gate_init="zero",
        feature_map="relu",
        read_norm="none",
        read_merge="gated",
        memory_input="stream",
        value_conv=1,
    ),
}
#: AGaLiTe's own, over :data:`VARIANTS`: its frequencies and read scale, its default's gate start
#: (one long head, each other head's spans spread within it: adopted on the development set; before
#: it a span per head, measured better for AGaLiTe, worse for GaLiTe) and its default's first read
#: (the observation with each dimension divided by its running root mean square: adopted on the
#: development set, where it lifted recall at delay 100 and T-Maze 80 and lost no task; GaLiTe's not
#: yet measured so)
AGALITE_VARIANTS: dict[str, dict[str, Any]] = {
    "default": dict(gate_init="long_first", frequencies="dc", read_scale="2r", memory_input="scaled"),
    "paper": dict(frequencies="reference", read_scale="2r"),
}


@dataclass(frozen=True)
class Choices:
    """A cell's choices, resolved (``frequencies`` and ``read_scale`` are None for GaLiTe)."""

    normaliser: str
    gate_init: str
    feature_map: str
    read_norm: str
    read_merge: str
    memory_input: str
    value_conv: int
    frequencies: str | None = None
    read_scale: str | None = None
    value_conv_init: str = "identity"
    write_gate: str = "none"

    def recorded(self) -> dict[str, Any]:
        """What a saved model records: every choice the cell has (GaLiTe's without AGaLiTe's). The
        value convolution's start is recorded only where it is not the identity, the only start
        before the choice existed, so what earlier releases recorded (and the benchmarks' runs keyed
        on it) stays what it was; it never changes what a loaded model computes."""
        recorded = {key: value for key, value in asdict(self).items() if value is not None}
        if recorded["value_conv_init"] == "identity":
            del recorded["value_conv_init"]
        if recorded["write_gate"] == "none":  # likewise: the only write before the choice existed
            del recorded["write_gate"]
        return recorded


def check_choice(cell: str, key: str, value: Any) -> None:
    """An error naming ``key``, the valid values and ``value`` if ``value`` is not one of them."""
    if key == VALUE_CONV:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{cell}: value_conv must be an int >= 1 (taps; 1 = no convolution), got {value!r}")
    elif value not in CHOICES[key]:
        raise ValueError(f"{cell}: {key} must be one of {CHOICES[key]}, got {value!r}")


def resolve(cell: str, variant: str, **given: Any) -> Choices:
    """``cell`` (``"GaLiTe"`` or ``"AGaLiTe"``)'s choices under ``variant``, each overridden by the
    one given (None: the variant's). Errors name the bad keyword and its valid values."""
    if variant not in VARIANTS:
        raise ValueError(f"{cell}: variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    agalite = cell == "AGaLiTe"
    resolved = {**VARIANTS[variant], **(AGALITE_VARIANTS[variant] if agalite else {})}
    for key, value in given.items():
        if key in AGALITE_ONLY and not agalite:
            raise TypeError(f"{cell}: {key} is AGaLiTe's only")
        if value is not None:
            check_choice(cell, key, value)
            resolved[key] = value
    return Choices(**resolved)
