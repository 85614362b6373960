"""The save format of RtxPPO models and RtxPPO policies, and the conversion of older formats.

A saved model records the cell keywords as built, every choice of GaLiTe's and AGaLiTe's variant
made explicit (:meth:`~sb3_rtx.policies.RtxActorCriticPolicy.resolved_cell_kwargs`), so a later
change of the library's defaults does not change what it computes, and the number of its format
(:data:`SAVE_FORMAT`). Loading converts an older format to today's, one explicit step per format,
before the policy is built; the policy's constructor takes keywords as given and never guesses
whether they come from a file.

Formats:

1. Every release before formats were numbered (the number is missing). GaLiTe and AGaLiTe record
   ``variant``, ``normaliser`` and ``gate_init``, and of the later choices those that existed when
   the model was saved; a choice that did not exist yet was computed as :data:`CHOICES_BEFORE_RECORDED`
   says (relu features, no read norm, the gated read, the memory reading the stream, no value
   convolution).
2. Every choice recorded, and the format number; the policy's ``actor_input_scale`` did not exist
   yet, so the actor's head read the cell's output as it is (1).
3. Today's: the policy's ``actor_input_scale`` recorded too (0.2 behind AGaLiTe's default variant
   when not given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: the format this release saves
SAVE_FORMAT = 3
#: GaLiTe's and AGaLiTe's choices that format 1 may lack, with what a model computed before the
#: choice existed (and so what it computes when loaded)
CHOICES_BEFORE_RECORDED: dict[str, Any] = {
    "feature_map": "relu",
    "read_norm": "none",
    "read_merge": "gated",
    "memory_input": "stream",
    "value_conv": 1,
}
#: what every format-1 GaLiTe / AGaLiTe model records
FORMAT_1_RECORDED = ("variant", "normaliser", "gate_init")
#: the cells whose keywords the conversions touch
GATED_CELLS = ("galite", "agalite")
#: the policy's cell when its keywords name none, in every format-1 release
FORMAT_1_DEFAULT_CELL = "agalite"


class SavedFormatError(ValueError):
    """A saved model this release cannot load as it was saved."""


def _format_1_to_2(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    cell = policy_kwargs.get("cell", FORMAT_1_DEFAULT_CELL)
    if not isinstance(cell, str) or cell.lower() not in GATED_CELLS:
        return policy_kwargs
    cell_kwargs = dict(policy_kwargs.get("cell_kwargs") or {})
    missing = [key for key in FORMAT_1_RECORDED if key not in cell_kwargs]
    if missing:
        raise SavedFormatError(
            f"this {cell} model was saved by a release that did not record its {', '.join(missing)}, so what it "
            "computed cannot be rebuilt; load it with the release that saved it"
        )
    for key, value in CHOICES_BEFORE_RECORDED.items():
        cell_kwargs.setdefault(key, value)
    return {**policy_kwargs, "cell_kwargs": cell_kwargs}


#: what a policy keyword added after format 2 computed before it existed (and so what an older model
#: computes when loaded)
POLICY_KEYWORDS_BEFORE_RECORDED: dict[str, Any] = {"actor_input_scale": 1.0}


def _format_2_to_3(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**POLICY_KEYWORDS_BEFORE_RECORDED, **policy_kwargs}


#: format n -> the conversion of its policy keywords to format n + 1
CONVERSIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _format_1_to_2, 2: _format_2_to_3}


def convert_policy_kwargs(policy_kwargs: dict[str, Any], saved_format: int | None) -> dict[str, Any]:
    """The policy keywords of a model saved in ``saved_format`` (None: format 1, before the format
    was recorded), converted to today's format."""
    version = 1 if saved_format is None else saved_format
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SAVE_FORMAT:
        raise SavedFormatError(
            f"saved in format {saved_format!r}; this release of sb3_rtx reads formats 1 to {SAVE_FORMAT} "
            "(a newer release saved it: upgrade sb3_rtx)"
        )
    while version < SAVE_FORMAT:
        policy_kwargs = CONVERSIONS[version](policy_kwargs)
        version += 1
    return policy_kwargs
