"""Registration of ``ppo_rtx`` (:class:`sb3_rtx.RtxPPO`) with the RL zoo (rl_zoo3).

>>> from sb3_rtx.zoo import register
>>> register()  # idempotent; after it, rl_zoo3's train / enjoy / record_video accept --algo ppo_rtx

An installed sb3_rtx does this by itself whenever rl_zoo3 is imported (see ``_autoregister.py``);
the ``sb3-rtx`` command and ``python -m sb3_rtx.zoo`` call it explicitly.

``register`` fills rl_zoo3's three tables (``ALGOS``, the Optuna ``HYPERPARAMS_SAMPLER`` and the
``HYPERPARAMS_CONVERTER`` used by ``--trial-id``) and teaches rl_zoo3's ``ExperimentManager`` two
things for ``ppo_rtx`` only: where sb3_rtx's own ``hyperparams/ppo_rtx.yml`` lives (so no
``--conf-file`` is needed), and to check an entry before it builds any environment.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any
from collections.abc import Callable

from sb3_rtx.ppo import RtxPPO
from sb3_rtx.zoo.config import check_ppo_rtx_hyperparams, check_tune_cells
from sb3_rtx.zoo.sampler import convert_ppo_rtx_params, sample_ppo_rtx_params

#: the name of RtxPPO in rl_zoo3 (``--algo ppo_rtx``)
ALGO = "ppo_rtx"


def hyperparams_dir() -> Path:
    """The folder holding ``ppo_rtx.yml``: inside the installed package, or the repo top level."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "hyperparams", package.parent / "hyperparams"):
        if (candidate / f"{ALGO}.yml").is_file():
            return candidate
    raise FileNotFoundError(f"sb3_rtx's hyperparams/{ALGO}.yml is missing from {package} and {package.parent}")


def default_config() -> Path:
    """sb3_rtx's tuned ``hyperparams/ppo_rtx.yml``, used when ``--conf-file`` is not given."""
    return hyperparams_dir() / f"{ALGO}.yml"


def register() -> None:
    """Add ``ppo_rtx`` to rl_zoo3 (algorithm, Optuna sampler, trial converter, default config)."""
    from rl_zoo3 import hyperparams_opt, utils

    utils.ALGOS[ALGO] = RtxPPO
    hyperparams_opt.HYPERPARAMS_SAMPLER.setdefault(ALGO, sample_ppo_rtx_params)
    hyperparams_opt.HYPERPARAMS_CONVERTER[ALGO] = convert_ppo_rtx_params
    _teach_experiment_manager()


def _teach_experiment_manager() -> None:
    from rl_zoo3.exp_manager import ExperimentManager

    if getattr(ExperimentManager, "_sb3_rtx_taught", False):
        return
    ExperimentManager.__init__ = _use_default_config(ExperimentManager.__init__)  # type: ignore[method-assign]
    ExperimentManager._preprocess_hyperparams = _check_before_envs(  # type: ignore[method-assign]
        ExperimentManager._preprocess_hyperparams
    )
    ExperimentManager._sb3_rtx_taught = True  # type: ignore[attr-defined]


def _use_default_config(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        # rl_zoo3 looks for hyperparams/ppo_rtx.yml inside its own package, where it is not;
        # a --conf-file the user gave exists (or is theirs to get wrong) and is left alone
        config = Path(self.config)
        if self.algo == ALGO and config.name == f"{ALGO}.yml" and not config.exists():
            self.config = str(default_config())

    return __init__


def _check_before_envs(preprocess: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(preprocess)
    def _preprocess_hyperparams(self: Any, hyperparams: dict[str, Any]) -> Any:
        if self.algo != ALGO:
            return preprocess(self, hyperparams)
        where = f"{self.config} [{self.env_name.gym_id}]"
        tune_cells = check_tune_cells(hyperparams.pop("tune_cells", None), where)
        result = preprocess(self, hyperparams)
        processed = result[0]
        if self._eval_env_kwargs_args is None:
            # rl_zoo3 2.9 gives the eval env a yml entry's env_kwargs only when --env-kwargs is also
            # on the command line; without this an entry with env_kwargs evaluates on another env
            self.eval_env_kwargs = self.env_kwargs
        check_ppo_rtx_hyperparams(processed, n_envs=self.n_envs, where=where)
        if self.optimize_hyperparameters:
            # the sampler keeps the entry's untuned policy keywords and cell unless tune_cells widens it
            from rl_zoo3 import hyperparams_opt

            hyperparams_opt.HYPERPARAMS_SAMPLER[ALGO] = functools.partial(
                sample_ppo_rtx_params,
                base_policy_kwargs=dict(processed.get("policy_kwargs") or {}),
                tune_cells=tune_cells,
            )
        return result

    return _preprocess_hyperparams


__all__ = ["ALGO", "default_config", "hyperparams_dir", "register"]
