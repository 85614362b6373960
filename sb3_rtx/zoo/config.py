"""Checks of a ``ppo_rtx`` zoo entry, run before rl_zoo3 builds any environment.

A mistake in a yml file (unknown cell, ``eta: 2.5``, heads that do not split ``d_model``,
a ``sequence_length`` that does not divide ``n_steps``) fails at once with a message naming the
file, the environment and the key, not minutes later inside torch.

One zoo convention: when an entry gives ``d_model`` or ``n_heads`` but not ``d_head``, the heads
split ``d_model`` (``d_head = d_model // n_heads``, as in ``torch.nn.MultiheadAttention``), so
``d_model`` must be divisible by ``n_heads``. The Python API keeps the paper's independent ``d_head``
(64 by default); the zoo writes the derived value into ``cell_kwargs`` so the saved model is explicit.
"""

from __future__ import annotations

import inspect
from typing import Any

from sb3_rtx.cells import CELLS, check_cell_kwargs
from sb3_rtx.policies import RtxActorCriticPolicy
from sb3_rtx.ppo import RtxPPO, check_discounts, check_rollout_sizes, default_sequence_length

#: cells whose width is split into attention heads
HEADED_CELLS = ("galite", "agalite", "gtrxl")


def check_ppo_rtx_hyperparams(hyperparams: dict[str, Any], n_envs: int, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and the key for any invalid ``ppo_rtx`` hyperparameter.

    :param hyperparams: the entry as rl_zoo3 hands it to the model (``policy_kwargs`` already a dict,
        ``n_envs`` / ``n_timesteps`` removed); ``cell_kwargs`` may gain a derived ``d_head``
    :param n_envs: number of training environments of the entry
    :param where: ``"<config file> [<env id>]"`` for the message
    """
    try:
        _check(hyperparams, n_envs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid ppo_rtx hyperparameters in {where}: {error}") from None


def check_tune_cells(tune_cells: Any, where: str) -> list[str] | None:
    """Validate the optional ``tune_cells`` entry (cells the Optuna sampler may choose from)."""
    if tune_cells is None:
        return None
    if isinstance(tune_cells, str):
        tune_cells = [tune_cells]
    if not isinstance(tune_cells, (list, tuple)) or not tune_cells:
        raise ValueError(f"invalid ppo_rtx hyperparameters in {where}: tune_cells must be a list of cell names")
    unknown = [cell for cell in tune_cells if not isinstance(cell, str) or cell.lower() not in CELLS]
    if unknown:
        raise ValueError(
            f"invalid ppo_rtx hyperparameters in {where}: tune_cells: unknown cell(s) {unknown}; "
            f"valid cells are: {', '.join(sorted(CELLS))}"
        )
    return [cell.lower() for cell in tune_cells]


def _check(hyperparams: dict[str, Any], n_envs: int) -> None:
    accepted = set(inspect.signature(RtxPPO.__init__).parameters) - {"self", "env", "_init_setup_model"}
    unknown = sorted(set(hyperparams) - accepted)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; RtxPPO accepts: {', '.join(sorted(accepted))}")
    _check_policy(hyperparams.get("policy"))
    check_discounts(**{name: hyperparams[name] for name in ("gamma", "gae_lambda", "cell_gae_lambda") if name in hyperparams})
    policy_kwargs = hyperparams.get("policy_kwargs") or {}
    if not isinstance(policy_kwargs, dict):
        raise ValueError(f"policy_kwargs must be a dict, got {policy_kwargs!r}")
    _check_policy_kwargs(policy_kwargs)
    n_steps = hyperparams.get("n_steps", 128)
    batch_size = hyperparams.get("batch_size", 128)
    sequence_length = hyperparams.get("sequence_length")
    check_rollout_sizes(
        n_steps,
        n_envs,
        batch_size,
        default_sequence_length(n_steps, batch_size) if sequence_length is None else sequence_length,
        hyperparams.get("n_epochs", 10),
    )


def _check_policy(policy: Any) -> None:
    if policy is None:
        raise ValueError("policy is missing (e.g. policy: 'MlpRtxPolicy')")
    if isinstance(policy, str):
        if policy not in RtxPPO.policy_aliases:
            raise ValueError(f"policy: {policy!r} is not an RtxPPO policy; use one of {', '.join(RtxPPO.policy_aliases)}")
    elif not (isinstance(policy, type) and issubclass(policy, RtxActorCriticPolicy)):
        raise ValueError(f"policy: {policy!r} does not subclass RtxActorCriticPolicy")


def _check_policy_kwargs(policy_kwargs: dict[str, Any]) -> None:
    accepted = set(inspect.signature(RtxActorCriticPolicy.__init__).parameters) - {
        "self",
        "observation_space",
        "action_space",
        "lr_schedule",
    }
    unknown = sorted(set(policy_kwargs) - accepted)
    if unknown:
        named = [f"policy_kwargs.{key}" for key in unknown]
        raise ValueError(f"unknown key(s) {named}; RtxActorCriticPolicy accepts: {', '.join(sorted(accepted))}")
    cell = policy_kwargs.get("cell", "agalite")
    if not isinstance(cell, str) or cell.lower() not in CELLS:
        raise ValueError(f"policy_kwargs.cell: unknown cell {cell!r}; valid cells are: {', '.join(sorted(CELLS))}")
    cell_kwargs = policy_kwargs.get("cell_kwargs") or {}
    if not isinstance(cell_kwargs, dict):
        raise ValueError(f"policy_kwargs.cell_kwargs must be a dict, got {cell_kwargs!r}")
    check_cell_kwargs(cell, cell_kwargs, prefix="policy_kwargs.cell_kwargs.")
    if cell.lower() in HEADED_CELLS:
        _derive_head_size(cell.lower(), cell_kwargs)
        policy_kwargs["cell_kwargs"] = cell_kwargs


def _derive_head_size(cell: str, cell_kwargs: dict[str, Any]) -> None:
    """Apply the zoo convention: heads split d_model unless d_head is given."""
    if "d_head" in cell_kwargs or not ({"d_model", "n_heads"} & set(cell_kwargs)):
        return
    defaults = inspect.signature(CELLS[cell].__init__).parameters
    d_model = cell_kwargs.get("d_model", defaults["d_model"].default)
    n_heads = cell_kwargs.get("n_heads", defaults["n_heads"].default)
    if d_model % n_heads:
        raise ValueError(
            f"policy_kwargs.cell_kwargs.d_model={d_model} is not divisible by n_heads={n_heads}: in zoo "
            "files the heads split d_model (d_head = d_model // n_heads); change one, or give d_head explicitly"
        )
    cell_kwargs["d_head"] = d_model // n_heads
