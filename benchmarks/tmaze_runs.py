"""Training runs on memory tasks (T-Maze by default) for the learning, ablation and memory-suite
benchmarks: one run, and a resumable pool.

A run trains one configuration with one seed for a fixed number of environment steps, records the
training success rate (SB3's last-100-episodes ``is_success`` buffer, once it holds 100 episodes)
after every rollout as its learning curve, then measures the final policy's success acting deterministically on fresh
episodes. :func:`run_all` runs many in worker processes (one torch thread each) and appends each
finished run to a JSON-lines file, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

#: PPO settings every run shares. RecurrentPPO back-propagates through whole rollouts (n_steps);
#: RtxPPO is given the same window (sequence_length = n_steps). Advantages normalised per minibatch
#: (SB3's default, RtxPPO's before its running scale): every run recorded under
#: ``results/`` before that change was made so; the memory suite overrides it (``--advantages``),
#: and the GAE lambda too: RtxPPO's 0.8 by default (``--gae-lambda``; SB3's 0.95 here).
PPO = dict(
    n_steps=128,
    batch_size=256,
    n_epochs=4,
    learning_rate=5e-4,
    gamma=0.99,
    gae_lambda=0.95,
    ent_coef=0.01,
    normalize_advantage=True,
)
#: RunSpec.algo_kwargs that only RtxPPO takes (the others are PPO settings both algorithms take)
RTX_ONLY_KEYWORDS = ("sequence_length", "state_dtype", "advantage_scale_horizon", "cell_gae_lambda")
N_ENVS = 8
TMAZE = "sb3_rtx/TMaze-v0"
NET_ARCH = dict(pi=[64], vf=[64])


@dataclass(frozen=True)
class RunSpec:
    """One training run: ``algo`` is ``"RtxPPO"`` or ``"RecurrentPPO"``."""

    label: str
    algo: str
    policy: str
    policy_kwargs: dict
    env_kwargs: dict
    seed: int
    timesteps: int
    eval_episodes: int
    tags: dict = field(default_factory=dict)  # what a report groups by (corridor, eta, r, ...)
    algo_kwargs: dict = field(default_factory=dict)  # PPO settings overridden, RtxPPO keywords (sequence_length, ...)
    env_id: str = TMAZE

    def key(self) -> str:
        """Everything that determines the run: the label, the algorithm and its policy keywords with
        every cell choice resolved (so a run made under an earlier default never matches), the task,
        the seed, the budget, every PPO setting, the evaluation and the library's version."""
        settings, rtx_only = split_algo_kwargs(self)
        parts = dict(
            label=self.label,
            algo=self.algo,
            policy=self.policy,
            policy_kwargs=resolved_policy_kwargs(self.algo, self.policy_kwargs),
            net_arch=NET_ARCH,
            env_id=self.env_id,
            env_kwargs=self.env_kwargs,
            n_envs=N_ENVS,
            seed=self.seed,
            timesteps=self.timesteps,
            eval_episodes=self.eval_episodes,
            settings=settings,
            rtx_only=rtx_only,
            version=library_version(self.algo),
        )
        return json.dumps(parts, sort_keys=True, default=str)


@cache
def _resolved_cell_kwargs(cell: str, cell_kwargs_json: str) -> tuple[str, dict[str, float]]:
    """The cell's keywords with every choice resolved, and the policy's defaults that depend on the
    cell (the value output's start, the actor's input scale) behind it."""
    from sb3_rtx.cells import make_cell
    from sb3_rtx.policies import default_actor_input_scale, default_value_init_scale

    cell_kwargs = json.loads(cell_kwargs_json)
    built = make_cell(cell, 1, **cell_kwargs)
    defaults = dict(value_init_scale=default_value_init_scale(built), actor_input_scale=default_actor_input_scale(built))
    return json.dumps({**cell_kwargs, **built.recorded_choices()}, sort_keys=True), defaults


def resolved_policy_kwargs(algo: str, policy_kwargs: dict) -> dict:
    """RtxPPO's policy keywords with the cell, its keywords (the policy's default size if none) and
    every choice the cell resolves made explicit, as a saved model records them; the value output's
    start and the actor's input scale (given, or the cell's default) too where they are not 1, so the
    runs made at 1 before AGaLiTe's defaults changed keep their keys and never match a run under
    today's defaults."""
    if algo != "RtxPPO":
        return policy_kwargs
    from sb3_rtx.policies import DEFAULT_CELL_KWARGS

    cell = policy_kwargs.get("cell", "agalite")
    cell_kwargs = policy_kwargs.get("cell_kwargs", DEFAULT_CELL_KWARGS.get(cell, {}))
    resolved_json, defaults = _resolved_cell_kwargs(cell, json.dumps(cell_kwargs, sort_keys=True))
    resolved = {**policy_kwargs, "cell": cell, "cell_kwargs": json.loads(resolved_json)}
    for keyword, default in defaults.items():
        scale = float(resolved.pop(keyword, default))
        if scale != 1.0:  # 1 is left out: the runs made before the keyword existed match
            resolved[keyword] = scale
    return resolved


def library_version(algo: str) -> str:
    """The version of the library that trains ``algo`` (sb3_rtx, or sb3-contrib for RecurrentPPO)."""
    if algo == "RtxPPO":
        import sb3_rtx

        return f"sb3_rtx {sb3_rtx.__version__}"
    import sb3_contrib

    return f"sb3_contrib {sb3_contrib.__version__}"


def split_algo_kwargs(spec: RunSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(settings, rtx_only)``: the shared PPO settings with ``spec.algo_kwargs``' PPO settings over
    them (both algorithms take these), and the keywords only RtxPPO takes."""
    rtx_only = {key: value for key, value in spec.algo_kwargs.items() if key in RTX_ONLY_KEYWORDS}
    return {**PPO, **{key: value for key, value in spec.algo_kwargs.items() if key not in rtx_only}}, rtx_only


def build_model(spec: RunSpec) -> Any:
    """``spec``'s untrained model on its ``N_ENVS`` training envs (one torch thread: sweeps run a job per core)."""
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    import sb3_rtx  # noqa: F401  (registers the sb3_rtx/ ids)
    from sb3_rtx import RtxPPO

    torch.set_num_threads(1)
    env = make_vec_env(spec.env_id, n_envs=N_ENVS, seed=spec.seed, env_kwargs=spec.env_kwargs)
    settings, rtx_only = split_algo_kwargs(spec)
    kwargs = dict(settings, policy_kwargs=dict(net_arch=NET_ARCH, **spec.policy_kwargs), seed=spec.seed)
    if spec.algo == "RtxPPO":
        model = RtxPPO(spec.policy, env, **{"sequence_length": settings["n_steps"], **rtx_only}, **kwargs)
    elif spec.algo == "RecurrentPPO":
        if rtx_only:
            raise ValueError(f"RecurrentPPO takes no {sorted(rtx_only)}")
        model = RecurrentPPO(spec.policy, env, **kwargs)
    else:
        raise ValueError(f"unknown algo {spec.algo!r}: expected 'RtxPPO' or 'RecurrentPPO'")
    return model


def train_and_evaluate(spec: RunSpec) -> dict[str, Any]:
    """Train ``spec``; return it with its curve, final success, training time and fps."""
    from stable_baselines3.common.callbacks import BaseCallback

    model = build_model(spec)
    curve: list[tuple[int, float]] = []

    class RecordSuccess(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            # only once the buffer is full: a rate over the first few episodes is noise; tasks
            # without info["is_success"] (POPGym) record the mean episode return instead
            buffer = self.model.ep_success_buffer
            if buffer is not None and len(buffer) == buffer.maxlen:
                curve.append((self.num_timesteps, float(np.mean(buffer))))
            elif not buffer and len(self.model.ep_info_buffer) == self.model.ep_info_buffer.maxlen:
                curve.append((self.num_timesteps, float(np.mean([info["r"] for info in self.model.ep_info_buffer]))))

    start = time.perf_counter()
    model.learn(spec.timesteps, callback=RecordSuccess())
    train_s = time.perf_counter() - start

    success, mean_return = final_score(model, spec.env_id, spec.env_kwargs, spec.seed, spec.eval_episodes)
    return {
        **asdict(spec),
        "key": spec.key(),
        "success": success,
        "return": mean_return,
        "train_s": train_s,
        "fps": model.num_timesteps / train_s,
        "curve": curve,
    }


def final_score(model: Any, env_id: str, env_kwargs: dict, seed: int, eval_episodes: int) -> tuple[float, float]:
    """A trained model's score as the sweeps record it: the success rate (NaN where the task reports
    none) and the mean return of its deterministic policy over ``eval_episodes`` fresh episodes, on
    ``N_ENVS`` envs seeded from ``10_000 + seed`` (never a training seed)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    successes: list[bool] = []

    def count_success(locals_: dict, _globals: dict) -> None:
        if locals_["done"] and "is_success" in locals_["info"]:
            successes.append(bool(locals_["info"]["is_success"]))

    eval_env = make_vec_env(env_id, n_envs=N_ENVS, seed=10_000 + seed, env_kwargs=env_kwargs)
    returns, _ = evaluate_policy(
        model,
        eval_env,
        n_eval_episodes=eval_episodes,
        deterministic=True,
        callback=count_success,
        return_episode_rewards=True,
    )
    return (float(np.mean(successes)) if successes else float("nan")), float(np.mean(returns))


def add_sweep_arguments(parser: argparse.ArgumentParser, seeds: list[int], quick_help: str, out: Path) -> None:
    """The options every T-Maze sweep takes: seeds, evaluation episodes, jobs, resume, quick, out."""
    parser.add_argument("--seeds", nargs="+", type=int, default=seeds)
    parser.add_argument("--eval-episodes", type=int, default=96)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (one torch thread each)")
    parser.add_argument("--resume", action="store_true", help="keep finished runs from the runs file")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=out)


def sweep_time(runs: list[dict], jobs: int, call_start: float) -> str:
    """The sentence every sweep report gives on its cost: training time of all its runs at ``jobs``
    at a time (from the runs, so a report remade with ``--report-only`` says the same). How long
    this call took (less when ``--resume`` kept finished runs) is printed, not reported."""
    total_min = sum(r["train_s"] for r in runs) / 60 / jobs
    print(f"this call: {(time.perf_counter() - call_start) / 60:.0f} min", flush=True)
    return f"Training time of the sweep: {total_min:.0f} min with {jobs} jobs, one torch thread per run, {platform.machine()}."


def _read_runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _append_run(log: Path, result: dict) -> None:
    with open(log, "a") as f:
        f.write(json.dumps(result) + "\n")


def configuration(key: str) -> str:
    """A run's key without its label: what it trained, whatever a table called it."""
    parts = json.loads(key)
    parts.pop("label")
    return json.dumps(parts, sort_keys=True)


def run_all(
    specs: list[RunSpec],
    log: Path,
    jobs: int,
    resume: bool,
    on_result: Callable[[dict], None] | None = None,
    train: bool = True,
    reuse: Sequence[Path] = (),
) -> list[dict]:
    """Run every spec (``jobs`` at a time) and return their results in no particular order.

    Finished runs are appended to ``log``; with ``resume`` the runs already there are kept and not
    run again, otherwise ``log`` starts empty. With ``train=False`` nothing is run: the results are
    those of the specs already in ``log`` (kept, as with ``resume``), the others left out.

    ``reuse``: other runs files whose runs trained what a spec would under another label (the same
    key but for the label: a variant that has since become the default). Such a run is appended to
    ``log`` under the spec's label and keywords, with ``reused_from`` naming its file and label, and
    not trained again: the runs are seeded and deterministic, so training it again gives the same.
    """
    done: dict[str, dict] = {}
    resume = resume or not train
    if resume and log.exists():
        done = {result["key"]: result for result in _read_runs(log)}
    elif log.exists():
        log.unlink()
    log.parent.mkdir(parents=True, exist_ok=True)
    todo = [spec for spec in specs if spec.key() not in done] if train else []
    if todo and reuse:
        earlier = {configuration(r["key"]): (r, path) for path in reuse for r in _read_runs(path)}
        for spec in list(todo):
            found = earlier.get(configuration(spec.key()))
            if found is None:
                continue
            run, path = found
            result = {**run, **asdict(spec), "key": spec.key(), "reused_from": f"{path}: {run['label']}"}
            done[result["key"]] = result
            _append_run(log, result)
            todo.remove(spec)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for result in pool.map(train_and_evaluate, todo):
            done[result["key"]] = result
            _append_run(log, result)
            if on_result:
                on_result(result)
    wanted = {spec.key() for spec in specs}
    return [result for key, result in done.items() if key in wanted]


def steps_to(run: dict, threshold: float) -> float:
    """The first step at which ``run``'s training curve reached ``threshold``; the run's budget if it
    never did, so a mean over seeds stays comparable."""
    reached = [step for step, v in run["curve"] if v >= threshold]
    return float(reached[0]) if reached else float(run["timesteps"])


def mean_success(runs: list[dict], measure: str = "success", **tags: Any) -> tuple[float, str]:
    """Mean of ``measure`` over the runs whose tags match, and each seed's value (sorted by seed).

    ``measure`` is ``"success"`` (the final policy's), ``"curve_mean"`` (the mean of the training
    success curve: how early a configuration learned, not only whether it got there) or
    ``"steps_to_90"`` (the first step at which training success reached 0.9, see :func:`steps_to`).
    """

    def value(run: dict) -> float:
        if measure == "curve_mean":
            return float(np.mean([v for _, v in run["curve"]])) if run["curve"] else 0.0
        if measure == "steps_to_90":
            return steps_to(run, 0.9)
        return run[measure]

    values = sorted((r["seed"], value(r)) for r in runs if all(r["tags"].get(k) == v for k, v in tags.items()))
    if not values:
        return float("nan"), ""
    return float(np.mean([v for _, v in values])), " ".join(f"{v:.2f}" for _, v in values)
