"""Probe: does the transformer cells' input stage keep the memory from learning under Gaussian noise?

    python -m benchmarks.probes.input_stage --jobs 2 --timesteps 150000 \
        --models LSTM "LSTM + input stage" "AGaLiTe (reads stream)" AGaLiTe
    python -m benchmarks.probes.input_stage --jobs 2 --task tmaze-40 \
        --models AGaLiTe "AGaLiTe (observation gain 0.1)" "AGaLiTe (observation gain 1)"

(the two tables in docs/noise.md)

The question (docs, "Gaussian noise: the memory reads the observation"): with 16 observation
dimensions of unit Gaussian noise, RtxPPO's LSTM learns noisy cue recall and every attention cell
stays at chance. The attention cells share one input stage, an orthogonal embedding with a relu
and then a LayerNorm in front of the memory; the LSTM reads the observation itself. Each model
below changes one thing:

* ``LSTM``: RtxPPO's LSTM (128 units) reading the observation, the reference;
* ``LSTM + input stage``: the same LSTM behind the attention cells' input stage (embedding of
  width 64, relu, LayerNorm);
* ``AGaLiTe (reads stream)``: the default before this probe, whose memory reads ``LN(embedding)``
  (``memory_input="stream"``);
* ``AGaLiTe``: today's default, whose first memory reads the observation (``memory_input="observation"``),
  its projection initialised with gain 0.3 (``OBSERVATION_PROJECTION_GAIN``);
* ``AGaLiTe (observation gain 0.1)``, ``AGaLiTe (observation gain 1)``: the same with that
  projection's gain 0.1 or 1 (what the gain was chosen from, with ``--task tmaze-40`` too);
* ``AGaLiTe (normed observation)``: the same reading ``LN(observation)`` (opt-in, ``--models``).

Task (``--task``, a development task of the memory suite): by default ``gauss-recall``,
``sb3_rtx/CueRecall-v0`` with 8 cues, delay 8, 16 dimensions of unit Gaussian noise; the memory
suite's PPO settings. Runs go to ``input_stage_runs.jsonl`` (``--resume`` keeps them), the table
to ``input_stage.md`` under ``benchmarks/results/probes/`` (``input_stage_<task>`` for another task).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.learning import SMALL
from benchmarks.memory_suite import SETS, TASKS
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, PPO, RunSpec, add_sweep_arguments, mean_success, run_all, sweep_time
from sb3_rtx.cells import CELLS, AGaLiTe, LSTM
from sb3_rtx.cells.base import CellState
from sb3_rtx.cells.block import SequenceMixer, layer_norm, linear, orthogonal_linear

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"


class LSTMBehindInputStage(LSTM):
    """RtxPPO's LSTM reading ``LN(relu(embedding(x)))``, the attention cells' input stage."""

    name = "probe-lstm-input-stage"

    def __init__(self, input_dim: int, hidden_size: int = 256, n_layers: int = 1, d_model: int = 64) -> None:
        super().__init__(d_model, hidden_size, n_layers)
        self.input_dim = input_dim  # what the cell checks its input against
        self.embed = orthogonal_linear(input_dim, d_model)
        self.norm = nn.LayerNorm(d_model)

    def _forward(self, x: torch.Tensor, state: CellState, starts: torch.Tensor) -> tuple[torch.Tensor, CellState]:
        return super()._forward(layer_norm(self.norm, F.relu(linear(self.embed, x))), state, starts)


class AGaLiTeObservationGain(AGaLiTe):
    """The default AGaLiTe with its observation projection initialised with another gain."""

    name = "probe-agalite-observation-gain"

    def __init__(
        self, input_dim: int, n_layers: int = 4, d_model: int = 128, n_heads: int = 4, d_head: int = 64,
        d_ffc: int = 128, eta: int = 8, r: int = 2, observation_gain: float = 1.0,
    ) -> None:  # fmt: skip
        # (keywords spelled out: make_cell checks them against the signature)
        super().__init__(input_dim, n_layers, d_model, n_heads, d_head, d_ffc, eta, r)
        project = self.blocks[0].mixer.features.project
        nn.init.orthogonal_(project.weight, gain=observation_gain)


class NormedInput(SequenceMixer):
    """A mixer that reads ``LN(input)`` (no affine) and is otherwise ``mixer``."""

    def __init__(self, mixer: SequenceMixer) -> None:
        super().__init__()
        self.mixer = mixer

    def layer_state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return self.mixer.layer_state_shapes()

    def forward(self, h: torch.Tensor, layer_state: CellState, context: Any) -> tuple[torch.Tensor, CellState]:
        return self.mixer(F.layer_norm(h, h.shape[-1:]), layer_state, context)


class AGaLiTeNormedObservation(AGaLiTe):
    """The default AGaLiTe whose first memory reads ``LN(observation)`` (no affine)."""

    name = "probe-agalite-normed-observation"

    def __init__(
        self, input_dim: int, n_layers: int = 4, d_model: int = 128, n_heads: int = 4, d_head: int = 64,
        d_ffc: int = 128, eta: int = 8, r: int = 2,
    ) -> None:  # fmt: skip
        super().__init__(input_dim, n_layers, d_model, n_heads, d_head, d_ffc, eta, r)
        first = self.blocks[0]
        first.mixer = NormedInput(first.mixer)


for _cls in (LSTMBehindInputStage, AGaLiTeObservationGain, AGaLiTeNormedObservation):
    CELLS[_cls.name] = _cls  # the workers are forked after this import, so they see them too

AGALITE = dict(SMALL, eta=4, r=2)
#: label -> policy_kwargs (every model is RtxPPO's MlpRtxPolicy)
MODELS: dict[str, dict] = {
    "LSTM": dict(cell="lstm", cell_kwargs=dict(hidden_size=128)),
    "LSTM + input stage": dict(cell=LSTMBehindInputStage.name, cell_kwargs=dict(hidden_size=128)),
    "AGaLiTe (reads stream)": dict(cell="agalite", cell_kwargs=dict(AGALITE, memory_input="stream")),
    "AGaLiTe": dict(cell="agalite", cell_kwargs=AGALITE),
    "AGaLiTe (observation gain 0.1)": dict(cell=AGaLiTeObservationGain.name, cell_kwargs=dict(AGALITE, observation_gain=0.1)),
    "AGaLiTe (observation gain 1)": dict(cell=AGaLiTeObservationGain.name, cell_kwargs=dict(AGALITE, observation_gain=1.0)),
    "AGaLiTe (normed observation)": dict(cell=AGaLiTeNormedObservation.name, cell_kwargs=AGALITE),
}

#: the table in the docs; "AGaLiTe (normed observation)" is opt-in
DEFAULT_MODELS = [model for model in MODELS if model != "AGaLiTe (normed observation)"]


def specs(task: str, models: list[str], seeds: list[int], timesteps: int, eval_episodes: int) -> list[RunSpec]:
    env_id, env_kwargs, _, _ = TASKS[task]
    return [
        RunSpec(label=model, algo="RtxPPO", policy="MlpRtxPolicy", policy_kwargs=MODELS[model], env_kwargs=env_kwargs,
                seed=seed, timesteps=timesteps, eval_episodes=eval_episodes, tags=dict(model=model, task=task), env_id=env_id,
                algo_kwargs=dict(normalize_advantage="running"))
        for model in models
        for seed in seeds
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS))
    parser.add_argument("--task", default="gauss-recall", choices=SETS["dev"], help="a development task of the memory suite")
    parser.add_argument("--timesteps", type=int, default=None, help="steps per run (default: the task's in the memory suite)")
    add_sweep_arguments(parser, [0, 1, 2, 3, 4], "smoke run: 2 models, 1 seed, 2 rollouts", RESULTS)
    args = parser.parse_args(argv)
    command = command_line("benchmarks.probes.input_stage", argv)
    if args.quick:
        args.models, args.seeds, args.timesteps, args.eval_episodes = ["LSTM + input stage", "AGaLiTe"], [0], 2048, 8
    task = args.task
    timesteps = args.timesteps or TASKS[task][2]
    stem = "input_stage" + ("" if task == "gauss-recall" else f"_{task}") + ("_quick" if args.quick else "")
    start = time.perf_counter()
    runs = run_all(specs(task, args.models, args.seeds, timesteps, args.eval_episodes), args.out / f"{stem}_runs.jsonl",
                   args.jobs, args.resume)  # fmt: skip
    rows = []
    for model in args.models:
        mean, seeds = mean_success(runs, model=model)
        rows.append(dict(model=model, success=mean, seeds=seeds))
    env_id, env_kwargs, _, chance = TASKS[task]
    return write_report(
        rows, args.out, stem, f"Probe: the input stage in front of the memory ({task})",
        f"`{env_id}` {env_kwargs} (chance {chance}), {timesteps / 1000:g}k steps per run, "
        f"{N_ENVS} envs, PPO {dict(PPO, normalize_advantage='running')}, RtxPPO sequence_length {PPO['n_steps']}. "
        f"Success of the final policy acting deterministically on {args.eval_episodes} fresh episodes, mean over "
        f"seeds {args.seeds} and each seed. {sweep_time(runs, args.jobs, start)} Made by `{command}`",
        [("model:", lambda r: r["model"]),
         ("success", lambda r: "-" if math.isnan(r["success"]) else f"{r['success']:.2f}"),
         ("seeds:", lambda r: r["seeds"])],
    )  # fmt: skip


if __name__ == "__main__":
    print(main())
