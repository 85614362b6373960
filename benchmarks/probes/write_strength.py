"""Does a selective write learn to select? How strongly a trained memory writes the cue step and the rest.

``write_gate="exp"`` writes each step with a strength per head, ``i = exp(5 tanh(z / 5))`` of a
projection ``z`` of the input, starting at 1 everywhere (zero weights): a memory that learned to
select would write the cue step far above the steps after it. This probe trains the memory suite's
models on development-set tasks (its settings, seeds and budgets: a row is the suite's run,
reproduced exactly) and then, on 64 fresh episodes of the deterministic policy, reads how strongly
the first layer writes at every step: ``AGaLiTe (selective write)``'s log strength ``log i`` of
each head, and, for comparison, the ``LSTM``'s log input gate of each unit (and its mean forget
gate). On CueRecall and T-Maze the cue is step 0; on RepeatPrevious no step is special, and a write
that varies with the cards weighs some cards above others in the memory's average.

    python -m benchmarks.probes.write_strength --jobs 2      # gauss-recall, tmaze-40, repeat-previous-2; seeds 0-4
    python -m benchmarks.probes.write_strength --quick       # a smoke run

Writes ``write_strength.md`` / ``.csv`` (``write_strength_quick.*`` with ``--quick``) under
``benchmarks/results/probes/``.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.memory_suite import MODELS, TASKS, specs
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import build_model, final_score

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
DEFAULT_MODELS = ["AGaLiTe (selective write)", "LSTM"]
DEFAULT_TASKS = ["gauss-recall", "tmaze-40", "repeat-previous-2"]
EPISODES = 64
#: the memory suite's evaluation episodes (the score column is the suite's)
EVAL_EPISODES = 96


def selective_write_recorder(cell: Any, seen: list[np.ndarray]) -> Callable[[], None]:
    """Record AGaLiTe's first-layer log write strengths ``(heads,)`` at each acting step into ``seen``
    (by wrapping the layer's ``log_write_strength``); returns what undoes it."""
    import torch

    features = cell.blocks[0].mixer.features
    log_write_strength = features.log_write_strength

    def recording(h: torch.Tensor) -> torch.Tensor:
        log_strength = log_write_strength(h)
        seen.append(log_strength.detach().reshape(-1).numpy())
        return log_strength

    features.log_write_strength = recording
    return lambda: setattr(features, "log_write_strength", log_write_strength)


def lstm_gate_recorder(cell: Any, seen: list[np.ndarray]) -> Callable[[], None]:
    """Record the LSTM's first-layer log input gate of every unit and its mean forget gate at each
    acting step into ``seen`` (``hidden_size + 1`` values), from the step's input and the state it
    starts from (by wrapping the cell's ``_forward``); returns what undoes it."""
    import torch

    lstm, forward = cell.lstm, cell._forward
    hidden = cell.hidden_size

    def recording(x: torch.Tensor, state: tuple, starts: torch.Tensor) -> tuple:
        h0 = state[0][:, 0] * (1.0 - starts[0]).view(-1, 1)  # the first layer's h, reset at a start
        gates = x[0] @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + h0 @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        log_input = torch.nn.functional.logsigmoid(gates[0, :hidden])
        forget = torch.sigmoid(gates[0, hidden : 2 * hidden]).mean()
        seen.append(torch.cat([log_input, forget.view(1)]).detach().numpy())
        return forward(x, state, starts)

    cell._forward = recording
    return lambda: setattr(cell, "_forward", forward)


def write_logs(agent: Any, env_id: str, env_kwargs: dict, episodes: int) -> list[np.ndarray]:
    """What the first layer writes at every step of ``episodes`` fresh episodes of the deterministic
    policy: ``(steps, heads)`` log strengths for a selective write, ``(steps, units + 1)`` log input
    gates and the mean forget gate for the LSTM."""
    from stable_baselines3.common.env_util import make_vec_env

    cell = agent.policy.cell_actor
    seen: list[np.ndarray] = []
    undo = (lstm_gate_recorder if cell.name == "lstm" else selective_write_recorder)(cell, seen)
    env = make_vec_env(env_id, n_envs=1, seed=20_000, env_kwargs=env_kwargs)
    logs = []
    for _ in range(episodes):
        obs, state, start, done = env.reset(), None, np.ones(1, dtype=bool), False
        seen.clear()
        while not done:
            action, state = agent.predict(obs, state, start, deterministic=True)
            obs, _, dones, _ = env.step(action)
            start, done = dones, bool(dones[0])
        logs.append(np.stack(seen))
    undo()
    return logs


def run(job: tuple[str, str, int, int | None]) -> dict[str, Any]:
    model, task, seed, steps = job
    spec = specs([model], [task], [seed], EVAL_EPISODES, steps)[0]  # the memory suite's own run
    env_id, env_kwargs, steps = spec.env_id, spec.env_kwargs, spec.timesteps
    agent = build_model(spec)
    agent.learn(steps)
    success, mean_return = final_score(agent, env_id, env_kwargs, seed, EVAL_EPISODES)
    logs = write_logs(agent, env_id, env_kwargs, EPISODES)
    lstm = agent.policy.cell_actor.name == "lstm"
    writes = [log[:, :-1] if lstm else log for log in logs]  # (steps, heads or units) log write
    first = np.stack([log[0] for log in writes])  # (episodes, heads)
    later = np.concatenate([log[1:] for log in writes])  # (steps, heads)
    row = dict(
        model=model,
        task=task,
        seed=seed,
        steps=steps,
        score=mean_return if success != success else success,
        first=float(first.mean()),
        later=float(later.mean()),
        best_gap=float((first.mean(0) - later.mean(0)).max()),  # per head or unit: step 0 over the rest
        spread=float(np.concatenate([log - log.mean(0) for log in writes]).std()),
        forget=float(np.concatenate([log[1:, -1] for log in logs]).mean()) if lstm else float("nan"),
    )
    print(f"{model:>26} {task:>18} seed {seed}: score {row['score']:.2f}, log write at step 0 {row['first']:+.2f}, "
          f"after {row['later']:+.2f}", flush=True)  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=DEFAULT_MODELS)
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), default=DEFAULT_TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(5)))
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each)")
    parser.add_argument("--quick", action="store_true", help="smoke run: one task, one seed, 2 rollouts")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    steps = None
    if args.quick:
        args.tasks, args.seeds, steps = ["gauss-recall"], [0], 2048
    for model in args.models:
        cell = MODELS[model][2].get("cell")
        if MODELS[model][0] != "RtxPPO" or not (cell == "lstm" or MODELS[model][2]["cell_kwargs"].get("write_gate") == "exp"):
            parser.error(f"{model}: this probe reads RtxPPO's LSTM or a cell with write_gate='exp'")
    jobs = [(model, task, seed, steps) for model in args.models for task in args.tasks for seed in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = sorted(
            pool.map(run, jobs), key=lambda r: (args.tasks.index(r["task"]), args.models.index(r["model"]), r["seed"])
        )
    table = write_report(
        rows,
        args.out,
        "write_strength_quick" if args.quick else "write_strength",
        "How strongly a trained memory writes the cue step and the rest",
        f"Made by `{command_line('benchmarks.probes.write_strength', argv)}`. The memory suite's models "
        "(its settings and budgets; score: the suite's), then, on "
        f"{EPISODES} fresh episodes of the deterministic policy, how strongly the first layer writes at every step: "
        "for a selective write (write_gate='exp') its log strength log i of each head (it starts at 0 at every "
        "step and is bounded by +-5), for the LSTM the log of each unit's input gate (and the mean forget "
        "gate). At step 0 / after: the mean over heads (units) and episodes at the first step (CueRecall's and "
        "T-Maze's cue) and at every later one; best head's gap: the largest per-head (per-unit) difference "
        "between the two (log 2 = 0.69: the cue written twice as strongly); spread: the SD of the log write within an "
        "episode (how much it follows the input); forget after: the LSTM's mean forget gate after step 0.",
        [
            ("model:", lambda r: r["model"]),
            ("task:", lambda r: r["task"]),
            ("seed", lambda r: str(r["seed"])),
            ("score", lambda r: f"{r['score']:.2f}"),
            ("log write at step 0", lambda r: f"{r['first']:+.2f}"),
            ("log write after", lambda r: f"{r['later']:+.2f}"),
            ("best head's gap", lambda r: f"{r['best_gap']:+.2f}"),
            ("spread", lambda r: f"{r['spread']:.2f}"),
            ("forget after", lambda r: "-" if r["forget"] != r["forget"] else f"{r['forget']:.3f}"),
        ],
    )
    print(table)


if __name__ == "__main__":
    main()
