"""How far Adam's epsilon damps each parameter's step, after PPO's gradient clipping.

SB3's policies use Adam with ``eps=1e-5`` (PyTorch's default is 1e-8), and PPO clips the whole
gradient to ``max_grad_norm`` (0.5) before Adam sees it. Adam's step on an entry is
``lr * m / (sqrt(v) + eps)``: where the clipped gradient's root mean square ``sqrt(v)`` is near
``eps`` or below, the step is damped by ``sqrt(v) / (sqrt(v) + eps)``. This probe trains the memory
suite's models on a development task (its settings and seeds: the suite's run, cut at ``--steps``)
and then reads the optimiser's state: per parameter, the median of ``sqrt(v_hat)`` (bias-corrected)
over its entries, the share of entries below ``eps``, and the median damping factor; and, over the
run, the mean and largest gradient norm before clipping (RtxPPO's ``train/grad_norm``).

    python -m benchmarks.probes.adam_steps            # tmaze-40, AGaLiTe and the LSTM, seed 0, 30k steps

Writes ``adam_steps.md`` / ``.csv`` under ``benchmarks/results/probes/`` (``--out`` elsewhere).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.memory_suite import MODELS, TASKS, specs
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import build_model

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
DEFAULT_MODELS = ["AGaLiTe", "LSTM"]


def step_damping(optimizer: Any, names: dict[Any, str]) -> list[dict[str, Any]]:
    """Per parameter of an Adam ``optimizer`` that has taken steps: its name (from ``names``), shape,
    median ``sqrt(v_hat)``, the share of entries with ``sqrt(v_hat) < eps`` and the median damping
    ``sqrt(v_hat) / (sqrt(v_hat) + eps)`` of their steps."""
    import torch

    rows = []
    for group in optimizer.param_groups:
        eps, beta2 = group["eps"], group["betas"][1]
        for parameter in group["params"]:
            state = optimizer.state.get(parameter)
            if not state:
                continue
            rms = (state["exp_avg_sq"] / (1.0 - beta2 ** float(state["step"]))).sqrt()
            rows.append(
                dict(
                    parameter=names[parameter],
                    shape="x".join(str(n) for n in parameter.shape),
                    eps=eps,
                    median_rms=float(rms.median()),
                    below_eps=float((rms < eps).float().mean()),
                    damping=float(torch.median(rms / (rms + eps))),
                )
            )
    return rows


def run(job: tuple[str, str, int, int]) -> list[dict[str, Any]]:
    from stable_baselines3.common.logger import configure

    model, task, seed, steps = job
    agent = build_model(specs([model], [task], [seed], 0, steps)[0])
    agent.set_logger(configure(None, []))
    # every update's logged values (a callback at rollout start, as recall_diagnostics reads them,
    # would miss the last update's): its mean norm over the minibatches, and its largest
    logged: dict[str, list[float]] = {"train/grad_norm": [], "train/grad_norm_max": []}
    record = agent.logger.record

    def recording(key: str, value: Any, exclude: Any = None) -> None:
        if key in logged:
            logged[key].append(float(value))
        record(key, value, exclude)

    agent.logger.record = recording
    agent.learn(steps)
    names = {p: n for n, p in agent.policy.named_parameters()}
    rows = step_damping(agent.policy.optimizer, names)
    means = logged["train/grad_norm"]
    norm, largest = sum(means) / len(means), max(logged["train/grad_norm_max"])
    print(f"{model} {task} seed {seed}: gradient norm before clipping {norm:.2f} (max {largest:.2f})", flush=True)
    summary = dict(model=model, task=task, seed=seed, steps=steps, grad_norm=norm, grad_norm_max=largest)
    return [dict(summary, **row) for row in rows]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=DEFAULT_MODELS)
    parser.add_argument("--task", choices=list(TASKS), default="tmaze-40")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=30_000, help="training steps before the optimiser is read")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for model in args.models:
        if MODELS[model][0] != "RtxPPO":
            parser.error(f"{model}: this probe reads RtxPPO's optimiser and logged gradient norms")
    jobs = [(model, args.task, seed, args.steps) for model in args.models for seed in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = [row for rows in pool.map(run, jobs) for row in rows]
    description = (
        f"Made by `{command_line('benchmarks.probes.adam_steps', argv)}`. The memory suite's {args.task} "
        f"({TASKS[args.task][1]}), its settings and cells, {args.steps // 1000}k steps; then Adam's state read. "
        "Gradient norm: before clipping to max_grad_norm 0.5, the mean (and largest) over the run's minibatches. "
        "Per parameter: the median over its entries of sqrt(v_hat), Adam's bias-corrected root mean square "
        "of the clipped gradient; the share of entries below eps; the median damping sqrt(v_hat) / "
        "(sqrt(v_hat) + eps) of their steps (1: none)."
    )
    write_report(
        rows,
        args.out,
        "adam_steps",
        "Adam's steps after clipping: how far eps damps each parameter",
        description,
        [
            ("model:", lambda r: r["model"]),
            ("seed", lambda r: str(r["seed"])),
            ("gradient norm (max)", lambda r: f"{r['grad_norm']:.2f} ({r['grad_norm_max']:.2f})"),
            ("parameter:", lambda r: f"`{r['parameter']}`"),
            ("shape", lambda r: r["shape"]),
            ("eps", lambda r: f"{r['eps']:.0e}"),
            ("median sqrt(v_hat)", lambda r: f"{r['median_rms']:.1e}"),
            ("below eps", lambda r: f"{r['below_eps']:.2f}"),
            ("median damping", lambda r: f"{r['damping']:.2f}"),
        ],
    )
    return rows


if __name__ == "__main__":
    main()
