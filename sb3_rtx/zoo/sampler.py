"""Optuna search space of ``ppo_rtx`` for ``rl_zoo3 train -optimize``: PPO and the cell together.

Every sampled combination is valid by construction, because rl_zoo3 only prunes errors raised inside
``learn``; an invalid model would stop the whole study:

* ``n_steps``, ``sequence_length`` and ``batch_size`` are powers of two with
  ``sequence_length <= n_steps`` and ``batch_size >= sequence_length``, so the sequence length divides
  the rollout and every minibatch holds whole sequences;
* ``n_heads`` in {1, 2, 4} always divides ``d_model`` in {32, 64, 128}; ``d_head = d_model // n_heads``.

The PPO ranges follow rl_zoo3's ``sample_ppo_params`` (the ``one_minus_gamma`` style and the
``*_pow`` parameters); the cell ranges are kept small enough to tune on a CPU.
"""

from __future__ import annotations

from typing import Any

import optuna
from torch import nn

from sb3_rtx.cells.variants import CHOICES

#: head sizes on top of the cell (actor and critic each)
NET_ARCHS = {"tiny": [64], "small": [64, 64]}
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
#: policy_kwargs keys the sampler decides; the entry's other policy keywords are kept
TUNED_POLICY_KEYS = ("cell", "cell_kwargs", "net_arch", "activation_fn")


def sample_ppo_rtx_params(
    trial: optuna.Trial,
    n_actions: int,
    n_envs: int,
    additional_args: dict,
    base_policy_kwargs: dict[str, Any] | None = None,
    tune_cells: list[str] | None = None,
) -> dict[str, Any]:
    """rl_zoo3 sampler signature, plus what the zoo entry fixes.

    :param base_policy_kwargs: the entry's ``policy_kwargs``; its cell is the one tuned unless
        ``tune_cells`` is given, and its untuned keys (``ortho_init``, ``shared_cell``, ...) are kept
    :param tune_cells: cells to choose between (the entry's ``tune_cells`` key); ``None``: the entry's cell
    """
    base = dict(base_policy_kwargs or {})
    cells = tune_cells or [str(base.get("cell", "agalite")).lower()]
    params: dict[str, Any] = {
        "n_steps_pow": trial.suggest_int("n_steps_pow", 5, 10),
        "sequence_length_pow": trial.suggest_int("sequence_length_pow", 3, 7),
        "batch_size_pow": trial.suggest_int("batch_size_pow", 5, 11),
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 0.0001, 0.03, log=True),
        # lambda from 0.7 to 0.999: rl_zoo3's PPO range stops at 0.9, and on memory tasks 0.8 (RtxPPO's
        # default) learned where 0.95 did not (docs, "Learning memory")
        "one_minus_gae_lambda": trial.suggest_float("one_minus_gae_lambda", 0.001, 0.3, log=True),
        # the memory's credit at gae_lambda (None) or at 0: 0 keeps a faint cue that unscored actions
        # separate from its answer and costs control from positions (docs, "RtxPPO"), so a study picks
        "cell_gae_lambda": trial.suggest_categorical("cell_gae_lambda", [None, 0.0]),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.05, log=True),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3]),
        "n_epochs": trial.suggest_categorical("n_epochs", [3, 5, 10, 20]),
        "max_grad_norm": trial.suggest_float("max_grad_norm", 0.3, 5.0, log=True),
        "net_arch": trial.suggest_categorical("net_arch", list(NET_ARCHS)),
        "activation_fn": trial.suggest_categorical("activation_fn", list(ACTIVATIONS)),
        # a one-choice categorical still records the cell in the trial, so --trial-id can rebuild it
        "cell": trial.suggest_categorical("cell", cells),
    }
    params.update(_sample_cell(trial, params["cell"]))
    hyperparams = convert_ppo_rtx_params(params, n_envs=n_envs)
    # like rl_zoo3's samplers: show the real values next to the *_pow parameters
    for key in ("n_steps", "sequence_length", "batch_size", "gamma"):
        trial.set_user_attr(key, hyperparams[key])
    kept = {key: value for key, value in base.items() if key not in TUNED_POLICY_KEYS}
    hyperparams["policy_kwargs"] = {**kept, **hyperparams["policy_kwargs"]}
    return hyperparams


def _sample_cell(trial: optuna.Trial, cell: str) -> dict[str, Any]:
    if cell == "lstm":
        return {
            "n_layers": trial.suggest_int("n_layers", 1, 2),
            "hidden_size": trial.suggest_categorical("hidden_size", [32, 64, 128, 256]),
        }
    cell_kwargs: dict[str, Any] = {
        "n_layers": trial.suggest_int("n_layers", 1, 3),
        "d_model": trial.suggest_categorical("d_model", [32, 64, 128]),
        "n_heads": trial.suggest_categorical("n_heads", [1, 2, 4]),
    }
    if cell in ("galite", "agalite"):
        cell_kwargs["eta"] = trial.suggest_categorical("eta", [1, 2, 4, 8])
        # how the value convolution starts: no start won on every development task (the identity
        # on delayed recall, the open-path starts on recent items and control), so a study picks
        # it per task (docs, "Learning memory")
        cell_kwargs["value_conv_init"] = trial.suggest_categorical("value_conv_init", list(CHOICES["value_conv_init"]))
    if cell == "agalite":
        cell_kwargs["r"] = trial.suggest_categorical("r", [1, 2, 4, 8])
    if cell == "gtrxl":
        cell_kwargs["memory_len"] = trial.suggest_categorical("memory_len", [16, 32, 64, 128])
    return cell_kwargs


#: the trial parameters that are cell keywords: its sizes, and the value convolution's start
CELL_KEYS = ("n_layers", "d_model", "n_heads", "eta", "r", "memory_len", "hidden_size", "value_conv_init")


def convert_ppo_rtx_params(sampled_params: dict[str, Any], n_envs: int | None = None) -> dict[str, Any]:
    """Trial parameters -> RtxPPO hyperparameters (rl_zoo3's converter, used by ``--trial-id``).

    :param n_envs: when known, ``batch_size`` is capped at one rollout (``n_steps * n_envs``)
    """
    params = dict(sampled_params)
    n_steps_pow = params.pop("n_steps_pow")
    sequence_pow = min(params.pop("sequence_length_pow"), n_steps_pow)
    batch_size = 2 ** max(params.pop("batch_size_pow"), sequence_pow)
    if n_envs is not None:
        batch_size = min(batch_size, 2**n_steps_pow * n_envs)  # still a multiple of sequence_length
    cell = params.pop("cell")
    cell_kwargs = {key: params.pop(key) for key in CELL_KEYS if key in params}
    if cell != "lstm":
        cell_kwargs["d_head"] = cell_kwargs["d_model"] // cell_kwargs["n_heads"]
        cell_kwargs["d_ffc"] = cell_kwargs["d_model"]
    head = NET_ARCHS[params.pop("net_arch")]
    activation_fn = ACTIVATIONS[params.pop("activation_fn")]
    gamma, gae_lambda = 1 - params.pop("one_minus_gamma"), 1 - params.pop("one_minus_gae_lambda")
    return {
        "n_steps": 2**n_steps_pow,
        "sequence_length": 2**sequence_pow,
        "batch_size": batch_size,
        "gamma": gamma,
        "gae_lambda": gae_lambda,
        **params,  # learning_rate, ent_coef, clip_range, n_epochs, max_grad_norm, cell_gae_lambda
        "policy_kwargs": {
            "cell": cell,
            "cell_kwargs": cell_kwargs,
            "net_arch": dict(pi=list(head), vf=list(head)),
            "activation_fn": activation_fn,
        },
    }
