"""Smoke runs of the benchmarks' --quick modes, so they cannot rot (they assert no timings)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.report import machine

ROOT = Path(__file__).resolve().parent.parent
#: benchmarks whose tables hold timings
TIMED = (
    "benchmarks.efficiency",
    "benchmarks.train_throughput",
    "benchmarks.export_latency",
    "benchmarks.zoo_scores",
    "benchmarks.probes.step_parts",
    "benchmarks.probes.weight_traffic",
    "benchmarks.probes.dispatch_floor",
)


@pytest.mark.parametrize(
    "module, table",
    [
        ("benchmarks.train_throughput", "train_throughput_quick.md"),
        ("benchmarks.efficiency", "efficiency_quick.md"),
        ("benchmarks.op_count", "op_count_quick.md"),
        ("benchmarks.probes.flop_split", "flop_split_quick.md"),
        ("benchmarks.probes.step_parts", "step_parts_quick.md"),
        ("benchmarks.zoo_scores", "zoo_scores_quick.md"),
        ("benchmarks.probes.state_precision", "state_precision_quick.md"),
        ("benchmarks.probes.recall_diagnostics", "recall_diagnostics_quick.md"),
        ("benchmarks.probes.init_probe", "init_probe_quick.md"),
        ("benchmarks.probes.signal_budget", "signal_budget_quick.md"),
        ("benchmarks.export_latency", "export_latency_quick.md"),
        ("benchmarks.probes.input_stage", "input_stage_quick.md"),
        ("benchmarks.probes.lag_recall", "lag_recall_quick.md"),
        ("benchmarks.probes.noisy_level", "noisy_level_quick.md"),
        ("benchmarks.probes.pendulum_control", "pendulum_control_quick.md"),
        ("benchmarks.probes.tmaze_phases", "tmaze_phases_quick.md"),
        ("benchmarks.probes.recall_phases", "recall_phases_quick.md"),
        ("benchmarks.probes.write_strength", "write_strength_quick.md"),
        ("benchmarks.probes.weight_traffic", "weight_traffic_quick.md"),
        ("benchmarks.probes.dispatch_floor", "dispatch_floor_quick.md"),
    ],
)
def test_benchmark_quick_mode_writes_its_table(module, table, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        # one thread: pytest already runs a worker per core, more would oversubscribe them
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = (tmp_path / table).read_text()
    assert text.startswith("# ") and text.count("\n|") >= 4
    assert (tmp_path / table.replace(".md", ".csv")).exists()
    # the table names the whole command that made it, every flag included
    assert f"Made by `python -m {module} --quick --out {tmp_path}`" in text
    if module in TIMED:  # ratios of timings depend on the CPU model: the table names it
        assert machine() in text
    if module == "benchmarks.efficiency":
        assert (tmp_path / "efficiency_quick.png").stat().st_size > 0
        assert "AGaLiTe" in text and "GTrXL M=128" in text
        reference_row = next(line for line in text.splitlines() if line.startswith("| cpu | small | GTrXL M=128 |"))
        assert "compiled act ms B=1" in text
        if any(shutil.which(compiler) for compiler in ("g++", "c++", "clang++")):  # inductor can compile
            # compiled acting ratio measured (--quick: at B=1 only), and the compiled training step's
            # time and peak memory
            assert re.search(r"\| 1\.00x \| - \| [0-9.]+ \([0-9]+ s\) \| 1\.00x \| [0-9.]+ \| 1\.00x \|$", reference_row), (
                reference_row
            )


def test_machine_names_the_cpu_model_where_the_system_says_it(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Example CPU 9000 @ 2.0GHz\n")
    assert machine(cpuinfo) == f"Example CPU 9000 @ 2.0GHz ({platform.machine()})"
    cpuinfo.write_text("processor\t: 0\n")  # no model named: the architecture alone
    assert machine(cpuinfo) == platform.machine()
    assert machine(tmp_path / "missing") == platform.machine()


PLOTS = {
    "benchmarks.learning": ["learning_quick_curves.png", "learning_quick_success.png"],
    "benchmarks.probes.ablation": ["ablation_quick.png"],
    "benchmarks.memory_suite": ["memory_suite_quick_curves.png"],
}


@pytest.mark.parametrize("module", sorted(PLOTS))
def test_benchmark_quick_mode_resumes_and_plots(module, tmp_path):
    """The T-Maze sweeps write table and plots, and a second call with --resume trains nothing again."""
    command = [sys.executable, "-m", module, "--quick", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    runs_file = next(tmp_path.glob("*_runs.jsonl"))
    finished = runs_file.read_text()
    second = subprocess.run([*command, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert runs_file.read_text() == finished, "--resume trained a finished run again"
    table = (tmp_path / runs_file.name.replace("_runs.jsonl", ".md")).read_text()
    assert table.startswith("# ") and table.count("\n|") >= 4
    for name in PLOTS[module]:
        assert (tmp_path / name).stat().st_size > 10_000, name
    if module == "benchmarks.memory_suite":  # --report-only: a run missing from the file is left out, not trained
        kept = [line for line in finished.splitlines(keepends=True) if '"label": "LSTM"' not in line]
        assert len(kept) == len(finished.splitlines()) - 1
        runs_file.write_text("".join(kept))
        third = subprocess.run([*command, "--report-only"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert third.returncode == 0, third.stderr[-3000:]
        assert runs_file.read_text() == "".join(kept), "--report-only trained a run"
        rows = (tmp_path / "memory_suite_quick.md").read_text().splitlines()
        assert next(row for row in rows if row.startswith("| LSTM |")).startswith("| LSTM | - |")
        assert not next(row for row in rows if row.startswith("| AGaLiTe |")).startswith("| AGaLiTe | - |")


def test_memory_suite_n_steps_sets_both_algorithms_rollouts_and_keys_its_runs_apart():
    """``--n-steps`` gives every run (RtxPPO and RecurrentPPO) that rollout length with two
    sequences per minibatch, and its runs never resume from runs made with the shared settings."""
    from benchmarks.memory_suite import specs

    default = specs(["AGaLiTe", "RecurrentPPO"], ["recall-100"], [0], 4, advantages="normalised")
    longer = specs(["AGaLiTe", "RecurrentPPO"], ["recall-100"], [0], 4, n_steps=256, advantages="normalised")
    assert all(spec.algo_kwargs == {} for spec in default)
    assert all(spec.algo_kwargs == {"n_steps": 256, "batch_size": 512} for spec in longer)
    assert not {spec.key() for spec in default} & {spec.key() for spec in longer}


def test_memory_suite_advantages_reach_both_algorithms_and_key_new_runs_apart_from_recorded_ones():
    """``--advantages``: ``running`` (the default, RtxPPO's) for RtxPPO, RecurrentPPO keeping its
    per-minibatch normalisation (it has no running scale); ``raw`` for both; ``normalised`` makes
    the runs recorded before the change (keys without the setting), so none resumes another's."""
    from benchmarks.memory_suite import specs
    from benchmarks.tmaze_runs import PPO, split_algo_kwargs

    def settings(advantages: str) -> list:
        found = [
            split_algo_kwargs(spec)
            for spec in specs(["AGaLiTe", "RecurrentPPO"], ["recall-10"], [0], 4, advantages=advantages)
        ]
        assert all(rtx_only == {} for _, rtx_only in found)
        return [algo_settings["normalize_advantage"] for algo_settings, _ in found]

    assert PPO["normalize_advantage"] is True
    assert settings("running") == ["running", True] and settings("raw") == [False, False]
    assert settings("normalised") == [True, True]
    keys = {advantages: {spec.key() for spec in specs(["AGaLiTe"], ["recall-10"], [0], 4, advantages=advantages)}
            for advantages in ("running", "raw", "normalised")}  # fmt: skip
    assert len(set.union(*keys.values())) == 3
    assert specs(["AGaLiTe"], ["recall-10"], [0], 4, advantages="normalised")[0].algo_kwargs == {}
    with pytest.raises(ValueError, match=r"advantages must be one of \('running', 'raw', 'normalised'\), got 'scaled'"):
        specs(["AGaLiTe"], ["recall-10"], [0], 4, advantages="scaled")


def test_memory_suite_gae_lambda_reaches_both_algorithms_and_the_default_keeps_recorded_keys():
    """``--gae-lambda`` is a PPO setting, so RecurrentPPO's runs get it too; its runs never resume
    from the shared settings' runs, and the shared value given explicitly keys as recorded runs do."""
    from benchmarks.memory_suite import specs
    from benchmarks.tmaze_runs import PPO, split_algo_kwargs

    lower = specs(["AGaLiTe", "RecurrentPPO"], ["recall-10"], [0], 4, gae_lambda=0.8)
    assert [split_algo_kwargs(spec)[0]["gae_lambda"] for spec in lower] == [0.8, 0.8]
    shared = specs(["AGaLiTe", "RecurrentPPO"], ["recall-10"], [0], 4)
    same = specs(["AGaLiTe", "RecurrentPPO"], ["recall-10"], [0], 4, gae_lambda=PPO["gae_lambda"])
    assert [spec.key() for spec in same] == [spec.key() for spec in shared]
    assert not {spec.key() for spec in lower} & {spec.key() for spec in shared}
    with pytest.raises(ValueError, match=r"gae_lambda must be in \[0, 1\], got 1.5"):
        specs(["AGaLiTe"], ["recall-10"], [0], 4, gae_lambda=1.5)


def test_zoo_scores_overrides_and_the_advantage_setting_both_reach_the_trained_model(tmp_path):
    """``--hyperparams`` and ``--advantages minibatch`` share the zoo's one ``--hyperparams`` flag
    (a second flag would replace the first): a real zoo run trains with both."""
    from benchmarks.zoo_scores import train, train_command

    from sb3_rtx import RtxPPO

    train(train_command("sb3_rtx/CueRecall-v0", 0, tmp_path, 512, "minibatch", ["ent_coef:0.25"]))
    model = RtxPPO.load(next((tmp_path / "ppo_rtx").glob("sb3_rtx-CueRecall-v0_*/sb3_rtx-CueRecall-v0.zip")))
    assert model.ent_coef == 0.25
    assert model.normalize_advantage is True


def test_zoo_scores_refuses_an_override_without_a_key_by_name():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.zoo_scores", "--hyperparams", "ent_coef=0.01"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--hyperparams takes KEY:VALUE items, as rl_zoo3.train does; got ['ent_coef=0.01']" in result.stderr


def test_recurrent_ppo_run_with_an_rtx_ppo_keyword_is_refused_by_name():
    from benchmarks.tmaze_runs import RunSpec, train_and_evaluate

    spec = RunSpec(label="RecurrentPPO", algo="RecurrentPPO", policy="MlpLstmPolicy", policy_kwargs={},
                   env_kwargs={}, seed=0, timesteps=256, eval_episodes=1, algo_kwargs={"sequence_length": 8})  # fmt: skip
    with pytest.raises(ValueError, match=r"RecurrentPPO takes no \['sequence_length'\]"):
        train_and_evaluate(spec)


def test_signal_budget_n_cues_trains_each_count_as_its_own_task_and_names_its_column(tmp_path):
    """``--n-cues``: each count is its own task (the answer's choices grow with it), its own column."""
    from benchmarks.probes.signal_budget import main

    argv = ["--configs", "LSTM", "--task", "gauss-recall", "--delays", "2", "--n-cues", "3", "5", "--seeds", "0",
            "--signals", "supervised", "--max-episodes", "16", "--jobs", "1", "--out", str(tmp_path)]  # fmt: skip
    runs = main(argv)
    assert sorted(run["n_cues"] for run in runs) == [3, 5]
    text = (tmp_path / "signal_budget.md").read_text()
    assert "| config | supervised, delay 2, 3 cues | supervised, delay 2, 5 cues |" in text
    with pytest.raises(SystemExit):
        main([*argv[:-2], "--n-cues", "1", "--out", str(tmp_path)])


def test_signal_budget_running_scale_reaches_the_policy_gradient_and_the_table_says_so(tmp_path):
    """``--advantages running``: the policy gradient divides by RtxPPO's running scale (the runs record
    it, and it changes what is learned from the same seed), and the table's text names it."""
    from benchmarks.probes.signal_budget import main, train

    argv = ["--configs", "AGaLiTe", "--task", "gauss-recall", "--delays", "2", "--n-cues", "4", "--seeds", "0",
            "--signals", "policy gradient", "--max-episodes", "64", "--jobs", "1", "--out", str(tmp_path)]  # fmt: skip
    runs = main([*argv, "--advantages", "running"])
    assert [run["advantages"] for run in runs] == ["running"]
    assert "advantages divided by RtxPPO's running scale" in (tmp_path / "signal_budget.md").read_text()
    task = {"noise": "normal", "noise_dims": 16, "n_cues": 4}
    by_batch = train("AGaLiTe", 2, "policy gradient", 0, 400, 16, task, "batch")
    by_scale = train("AGaLiTe", 2, "policy gradient", 0, 400, 16, task, "running")
    assert by_batch["final_success"] != by_scale["final_success"]


def test_recall_phases_probe_looks_only_at_development_side_tasks(capsys):
    """The probe looks into causes, so it takes no test-set task (the test set chooses nothing); it
    does take the development side's many-cue task, which is in neither set."""
    from benchmarks.memory_suite import SETS
    from benchmarks.probes.recall_phases import TASK_CHOICES, main

    assert not set(TASK_CHOICES) & set(SETS["test"])
    assert {"gauss-recall", "gauss-recall-32cues"} <= set(TASK_CHOICES)
    with pytest.raises(SystemExit):
        main(["--task", "gauss-recall-16cues", "--quick"])
    assert "invalid choice: 'gauss-recall-16cues'" in capsys.readouterr().err


def test_recall_phases_ppo_overrides_reach_the_runs(tmp_path):
    """``--gae-lambda``, ``--ent-coef``, ``--n-epochs`` and ``--learning-rate``: every run's model
    trains with them (read back from the model), and the table says so."""
    from benchmarks.probes.recall_phases import main

    rows = main(["--quick", "--gae-lambda", "0.5", "--ent-coef", "0.0", "--n-epochs", "2", "--learning-rate", "1e-4",
                 "--out", str(tmp_path)])  # fmt: skip
    settings = [(row["gae_lambda"], row["ent_coef"], row["n_epochs"], row["learning_rate"]) for row in rows]
    assert settings == [(0.5, 0.0, 2, 1e-4)] * 2
    text = (tmp_path / "recall_phases_quick.md").read_text()
    for setting in ("'gae_lambda': 0.5", "'ent_coef': 0.0", "'n_epochs': 2", "'learning_rate': 0.0001"):
        assert setting in text


@pytest.mark.parametrize("model", ["AGaLiTe", "LSTM"])
def test_recall_phases_input_selection_reads_the_memorys_input_weights(model):
    """The probe's input selection: about 1 for a fresh memory (no input favoured); weighing the
    memory's cue inputs twice (AGaLiTe's value rows, the LSTM's input weights) doubles it and the cue
    side of the input weights, and changing the weights of inputs it does not read (the query flag;
    AGaLiTe's key rows) does not."""
    import torch

    from benchmarks.memory_suite import specs
    from benchmarks.probes.recall_phases import input_selection, input_weights
    from benchmarks.tmaze_runs import build_model

    spec = specs([model], ["gauss-recall-24cues"], [0], 8, timesteps=256)[0]
    policy = build_model(spec).policy
    n_cues = spec.env_kwargs["n_cues"]
    fresh = input_selection(policy, n_cues)
    assert 0.7 < fresh < 1.4
    cell = policy.cell_actor
    with torch.no_grad():
        if model == "LSTM":
            weight = cell.lstm.weight_ih_l0
            weight[:, n_cues] *= 10.0  # the query flag
        else:
            features = cell.blocks[0].mixer.features
            features.project.weight.view(features.n_heads, -1, cell.input_dim)[:, : features.d_head] *= 10.0  # keys
            weight = features.value_weight()
        assert input_selection(policy, n_cues) == pytest.approx(fresh)
        cue, noise = input_weights(policy, n_cues)
        weight[..., :n_cues] *= 2.0
    assert input_selection(policy, n_cues) == pytest.approx(2 * fresh)
    assert input_weights(policy, n_cues) == pytest.approx((2 * cue, noise))


def test_recall_phases_value_start_scale_keeps_the_policy_and_shrinks_the_values():
    """The probe's smaller value start: the value rows a quarter as large in every layer, and the
    cell's output, the logits and the critic's hidden features on a sequence of observations about
    as before (the read is normalised, the value convolution linear, and the direct path
    compensates; only the read norm's epsilon, where a head's read is tiny, tells them apart)."""
    import copy

    import torch

    from benchmarks.memory_suite import specs
    from benchmarks.probes.recall_phases import scale_value_start
    from benchmarks.tmaze_runs import build_model

    spec = specs(["AGaLiTe"], ["gauss-recall-24cues"], [0], 8, timesteps=256)[0]
    agent = build_model(spec)
    before = copy.deepcopy(agent.policy)
    scale_value_start(agent, 0.25)
    for old, new in zip(before.cell_actor.blocks, agent.policy.cell_actor.blocks, strict=True):
        torch.testing.assert_close(new.mixer.features.value_weight(), 0.25 * old.mixer.features.value_weight())
    steps, n = 10, 6
    observations = torch.randn(steps * n, agent.observation_space.shape[0])
    starts = torch.zeros(steps, n)
    starts[0] = 1.0
    outputs = []
    for policy in (before, agent.policy):
        with torch.no_grad():
            latent, latent_vf, _ = policy._latents(observations, policy.initial_state(n), starts.reshape(-1))
            logits = policy._get_action_dist_from_latent(policy.latent_actor(latent)).distribution.logits
            outputs.append((latent, logits, policy.mlp_extractor.forward_critic(latent_vf)))
    for old, new in zip(*outputs, strict=True):
        torch.testing.assert_close(new, old, rtol=0.0, atol=0.02)


def test_recall_phases_value_decay_shrinks_the_value_rows_alone():
    """The probe's decay of the value rows: an optimiser step whose gradient is zero leaves every
    parameter as it was except each memory layer's value rows, which shrink by exactly
    ``1 - lr * weight_decay`` (the value bias and the projection's other rows untouched)."""
    import copy

    import torch

    from benchmarks.memory_suite import specs
    from benchmarks.probes.recall_phases import decay_value_rows
    from benchmarks.tmaze_runs import build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall-24cues"], [0], 8, timesteps=256)[0])
    policy = agent.policy
    before = copy.deepcopy(policy)
    decay_value_rows(agent, 2.0)
    rate = policy.optimizer.param_groups[0]["lr"]
    for parameter in policy.parameters():
        parameter.grad = torch.zeros_like(parameter)
    policy.optimizer.step()
    value_rows = 0
    for old, new in zip(before.cell_actor.blocks, policy.cell_actor.blocks, strict=True):
        old_features, new_features = old.mixer.features, new.mixer.features
        torch.testing.assert_close(new_features.value_weight(), (1 - rate * 2.0) * old_features.value_weight())
        torch.testing.assert_close(new_features.value_bias(), old_features.value_bias())
        value_rows += new_features.value_weight().numel()
    changed = sum(int((new != old).sum()) for old, new in zip(before.parameters(), policy.parameters(), strict=True))
    assert changed == value_rows


def fill_rollout(buffer, seed: int = 0):
    """Fill a rollout buffer with random rewards, values and episode starts (one in 20 steps); the
    ``last_values`` and ``dones`` after its last step, as ``compute_returns_and_advantage`` takes them."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    buffer.rewards[:] = rng.normal(size=buffer.rewards.shape)
    buffer.values[:] = rng.normal(size=buffer.values.shape)
    buffer.episode_starts[:] = rng.random(buffer.episode_starts.shape) < 0.05
    return torch.as_tensor(rng.normal(size=buffer.n_envs)), rng.random(buffer.n_envs) < 0.5


def test_probe_memory_projections_without_actor_credit_zero_the_cell_side_advantages_only():
    """The split whose memory side gets no policy gradient: after GAE the cell side's advantages are
    zero (so its clipped objective and gradient are), the agent's are SB3's as before."""
    import copy

    import numpy as np

    from benchmarks.memory_suite import specs
    from benchmarks.probes.credit import MEMORY_PROJECTIONS_NO_ACTOR, edit_credit
    from benchmarks.tmaze_runs import build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024, gae_lambda=0.8)[0])
    buffer = agent.rollout_buffer
    last_values, dones = fill_rollout(buffer)
    plain = copy.deepcopy(buffer)
    plain.compute_returns_and_advantage(last_values=last_values, dones=dones)
    edit_credit(agent, MEMORY_PROJECTIONS_NO_ACTOR, 0)
    buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
    assert buffer.cell_advantages is not None and not buffer.cell_advantages.any()
    np.testing.assert_array_equal(buffer.advantages, plain.advantages)
    assert np.abs(buffer.advantages).max() > 0


def credit_split_case():
    """An RtxPPO agent (lambda 0.8) whose rollout buffer :func:`fill_rollout` filled, that fill's
    ``last_values`` and ``dones``, and copies of the buffer with SB3's advantages at lambda 0 and at
    the agent's lambda: what the credit-split tests compare the cell's advantages with."""
    import copy

    from benchmarks.memory_suite import specs
    from benchmarks.tmaze_runs import build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024, gae_lambda=0.8)[0])
    buffer = agent.rollout_buffer
    last_values, dones = fill_rollout(buffer)
    at_zero, at_own = copy.deepcopy(buffer), copy.deepcopy(buffer)
    at_zero.gae_lambda = 0.0
    for reference in (at_zero, at_own):
        reference.compute_returns_and_advantage(last_values=last_values, dones=dones)
    return agent, buffer, last_values, dones, at_zero, at_own


def test_probe_lambda_split_fits_the_critic_at_its_own_lambda():
    """The probes' split lambdas: on one filled rollout buffer, the advantages are GAE's at the agent's
    gae_lambda and the critic's targets (returns) are values plus GAE's advantages at value_lambda,
    each as SB3's own computation at that lambda gives them; the buffer keeps its gae_lambda."""
    import copy

    import numpy as np

    from benchmarks.memory_suite import specs
    from benchmarks.probes.tmaze_phases import split_lambdas
    from benchmarks.tmaze_runs import build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024)[0])
    buffer = agent.rollout_buffer
    last_values, dones = fill_rollout(buffer)
    expected = {}
    for lam in (0.0, agent.gae_lambda):
        reference = copy.deepcopy(buffer)
        reference.gae_lambda = lam
        reference.compute_returns_and_advantage(last_values=last_values, dones=dones)
        expected[lam] = reference
    split_lambdas(agent, 0.0)
    buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
    assert buffer.gae_lambda == agent.gae_lambda != 0.0
    np.testing.assert_array_equal(buffer.advantages, expected[agent.gae_lambda].advantages)
    np.testing.assert_array_equal(buffer.returns, expected[0.0].returns)
    assert not np.allclose(buffer.returns, expected[agent.gae_lambda].returns)


@pytest.mark.parametrize(
    ("model", "factor"), [("AGaLiTe (actor input x0.2, cell gradient x5)", 5.0), ("AGaLiTe (actor gradient stopped)", 0.0)]
)
def test_probe_actor_gradient_edit_scales_only_what_the_actor_sends_into_the_cell(model, factor):
    """The probes' edit of the actor's gradient: the actor's head computes what it did, and the
    gradient it sends back into the cell's output is the default's times the variant's factor."""
    import torch

    from benchmarks.memory_suite import specs
    from benchmarks.probes.tmaze_phases import ACTOR_GRADIENT_SCALE, edit_actor
    from benchmarks.tmaze_runs import build_model

    assert ACTOR_GRADIENT_SCALE[model] == factor
    policy = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024)[0]).policy
    output = torch.randn(6, policy.cell_actor.output_dim, requires_grad=True)

    def head_and_gradient() -> tuple[torch.Tensor, torch.Tensor]:
        latent = policy.latent_actor(output)
        (gradient,) = torch.autograd.grad(latent.square().sum(), output)
        return latent.detach(), gradient

    latent, gradient = head_and_gradient()
    agent = type("Agent", (), {"policy": policy})()
    edit_actor(agent, model)
    edited_latent, edited_gradient = head_and_gradient()
    torch.testing.assert_close(edited_latent, latent, rtol=0, atol=0)
    assert gradient.abs().max() > 0
    torch.testing.assert_close(edited_gradient, gradient * factor)


def test_probe_actor_only_centre_leaves_the_cell_and_the_critic_and_centres_what_the_actor_reads():
    """The T-Maze probe's actor-only centre: acting steps are counted into the next rollout's mean; the
    cell's output (what the critic reads) is unchanged, and the actor's head reads that output times
    actor_input_scale less the mean times the same."""
    import copy

    import torch

    from benchmarks.memory_suite import specs
    from benchmarks.probes.tmaze_phases import OutputCentre
    from benchmarks.tmaze_runs import build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024)[0])
    policy = agent.policy
    plain_head = copy.deepcopy(policy.mlp_extractor.policy_net)
    cell = policy.cell_actor
    x = torch.randn(5, 3, cell.input_dim)
    with torch.no_grad():
        before, _ = cell(x, None, None)
        centre = OutputCentre(agent, actor_only=True)
        state, acted = None, []
        for t in range(5):  # acting steps: counted
            step_output, state = cell(x[t : t + 1], state, None)
            acted.append(step_output)
        centre.new_rollout()
        after, _ = cell(x, None, None)
        torch.testing.assert_close(after, before, rtol=0, atol=0)
        mean = centre.centres[0]
        torch.testing.assert_close(mean, torch.cat(acted).reshape(-1, cell.output_dim).mean(0))
        assert mean.abs().max() > 0
        scale = policy.actor_input_scale
        torch.testing.assert_close(policy.latent_actor(after), plain_head(scale * after - scale * mean))


def input_statistics(agent) -> dict:
    """A copy of the policy's running input statistics (AGaLiTe's default reads the observation by them):
    what a rollout acted with, which RtxPPO updates after the update that follows it."""
    return {key: value.clone() for key, value in agent.policy.state_dict().items() if ".input_standardiser." in key}


@pytest.mark.parametrize("dueling", [False, True])
def test_probe_action_value_advantages_are_the_taken_actions_value_less_the_expected(dueling):
    """The action-value probe edit: after a rollout, the value GAE bootstrapped from is
    ``sum_a pi(a|s) Q(s, a)`` and each step's advantage ``Q(s, a_t)`` less it, ``Q(s, a_t)`` being
    what the training loss fits (all recomputed from the rollout's observations and states, at a
    learning rate of 0 so that the update after the rollout leaves the network as it acted)."""
    import torch

    from benchmarks.memory_suite import specs
    from benchmarks.probes.action_values import action_value_critic
    from benchmarks.tmaze_runs import build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024)[0])
    action_value_critic(agent, dueling=dueling)
    with torch.no_grad():  # the value output starts at zero, and with it every advantage: start it elsewhere
        agent.policy.value_net.weight.normal_()
    agent.lr_schedule = lambda _: 0.0
    acted_with = input_statistics(agent)
    agent.learn(agent.n_steps * agent.n_envs)
    agent.policy.load_state_dict(acted_with, strict=False)  # RtxPPO merged the rollout's after the update
    (sample,) = agent.rollout_buffer.get(batch_size=None)
    assert sample.advantages.abs().max() > 1e-2
    with torch.no_grad():
        q_taken, _, _ = agent.policy.evaluate_actions(
            sample.observations, sample.actions.long().flatten(), sample.cell_states, sample.episode_starts
        )
        expected = agent.policy.predict_values(sample.observations, sample.cell_states, sample.episode_starts)
    torch.testing.assert_close(expected.flatten(), sample.old_values, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(q_taken.flatten(), sample.old_values + sample.advantages, atol=1e-4, rtol=1e-4)


def test_probe_reward_prediction_fits_the_standardised_rewards_of_the_action_taken():
    """The reward-prediction probe edit on a T-Maze whose episodes truncate: each step's target is its
    reward as the env returned it (not RtxPPO's bootstrapped one), standardised once per rollout and
    the same in every epoch; the extra loss term is COEF times the Huber loss of the head on the
    cell's output and the one-hot action taken, and its gradient reaches the cell; an agent whose
    ``cell_advantages`` field is in use is refused."""
    import numpy as np
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    from benchmarks.probes.reward_prediction import COEF, predict_rewards
    from sb3_rtx import RtxPPO

    env = make_vec_env("sb3_rtx/TMaze-v0", n_envs=4, seed=0, env_kwargs=dict(corridor_len=2, time_limit=4))
    kwargs = dict(n_steps=32, batch_size=64, sequence_length=16, n_epochs=2, seed=0, gamma=0.9)
    agent = RtxPPO("MlpRtxPolicy", env, policy_kwargs=dict(cell="agalite", cell_kwargs=SMALL_AGALITE), **kwargs)
    predict_rewards(agent)
    with torch.no_grad():  # the value output starts at zero, and with it the bootstrap: start it elsewhere
        agent.policy.value_net.weight.normal_()
        agent.policy.value_net.bias.fill_(3.0)
    agent.lr_schedule = lambda _: 0.0
    agent.learn(2 * agent.n_steps * agent.n_envs)  # two rollouts: the statistics have seen both
    buffer = agent.rollout_buffer
    stored = np.array(buffer.rewards)  # with RtxPPO's bootstrap at truncations
    assert not np.isin(stored, [-0.1, -1.0, 4.0]).all(), "no truncation bootstrapped in the buffer: nothing tested"

    def targets_of_a_get(seed: int) -> tuple[np.ndarray, np.ndarray]:
        np.random.seed(seed)
        (sample,) = buffer.get(batch_size=None)
        np.random.seed(seed)
        order = np.random.permutation(buffer.sequences_per_env * buffer.n_envs)
        return sample.cell_advantages.numpy(), order

    first, order = targets_of_a_get(0)
    again, _ = targets_of_a_get(0)
    np.testing.assert_array_equal(first, again)  # no statistics update between epochs
    sequence, env_index = order // buffer.n_envs, order % buffer.n_envs
    steps = sequence[None, :] * buffer.sequence_length + np.arange(buffer.sequence_length)[:, None]
    picked = first.reshape(buffer.sequence_length, -1)
    distinct = np.unique(np.round(picked, 5))
    assert len(distinct) <= 3, f"targets other than the env's three rewards: {distinct}"
    # aligned: where no bootstrap was added the stored reward is the env's, and each such reward has one
    # target, the larger the reward the larger the target
    at_steps = stored[steps, env_index[None, :]]
    rewards_seen = [r for r in (-1.0, -0.1, 4.0) if np.isclose(at_steps, r).any()]
    assert len(rewards_seen) >= 2, f"too few kinds of reward in the rollout to test the alignment: {rewards_seen}"
    target_of = [np.unique(picked[np.isclose(at_steps, r)]) for r in rewards_seen]
    assert all(len(t) == 1 for t in target_of)
    assert np.all(np.diff([t[0] for t in target_of]) > 0)

    (sample,) = buffer.get(batch_size=None)
    actions = sample.actions.long().flatten()
    *_, losses, _ = agent._evaluate_minibatch(sample, actions, 1.0, 0.2)
    with torch.no_grad():
        latent, _, _ = agent.policy._latents(sample.observations, sample.cell_states, sample.episode_starts)
        one_hot = torch.nn.functional.one_hot(actions, int(agent.action_space.n)).float()
        predicted = agent.policy.reward_net(torch.cat([latent, one_hot], dim=-1)).flatten()
        expected = COEF * torch.nn.functional.smooth_l1_loss(predicted, sample.cell_advantages)
    torch.testing.assert_close(losses[1].detach(), expected)
    agent.policy.optimizer.zero_grad()
    losses[1].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.policy.cell_actor.parameters())

    split = RtxPPO("MlpRtxPolicy", env, policy_kwargs=dict(cell="agalite", cell_kwargs=SMALL_AGALITE), **kwargs)
    split.cell_gae_lambda = 0.0
    with pytest.raises(ValueError, match="cell_gae_lambda"):
        predict_rewards(split)


def test_probe_action_value_spreads_are_the_advantages_size_and_gae_is_kept_without_q_advantages():
    """The dueling action-value critic read only (``advantages_from_q=False``): the actor's advantages
    stay GAE's from ``V`` (the lambda-returns less the values), and the spreads it returns are
    each rollout step's ``sqrt(sum_a pi(a|s) (Q(s, a) - V(s))^2)``, recomputed from the rollout with
    every action (compared as sets: the buffer's sample is in another order than the rollout's)."""
    import numpy as np
    import torch

    from benchmarks.memory_suite import specs
    from benchmarks.probes.action_values import action_value_critic
    from benchmarks.tmaze_runs import build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024)[0])
    spreads = action_value_critic(agent, dueling=True, advantages_from_q=False)
    with torch.no_grad():
        agent.policy.value_net.weight.normal_()
    agent.lr_schedule = lambda _: 0.0
    acted_with = input_statistics(agent)
    agent.learn(agent.n_steps * agent.n_envs)
    agent.policy.load_state_dict(acted_with, strict=False)  # RtxPPO merged the rollout's after the update
    buffer = agent.rollout_buffer
    assert len(spreads) == buffer.buffer_size
    # GAE's advantages are the lambda-returns less the values (Q's advantages would not be)
    np.testing.assert_allclose(buffer.advantages, buffer.returns - buffer.values, atol=1e-5)
    (sample,) = buffer.get(batch_size=None)
    observations, states, starts = sample.observations, sample.cell_states, sample.episode_starts
    with torch.no_grad():
        probabilities = agent.policy.get_distribution(observations, states, starts)[0].distribution.probs
        actions = sample.actions.long().flatten()
        every = [torch.full_like(actions, a) for a in range(probabilities.shape[-1])]
        q = torch.cat([agent.policy.evaluate_actions(observations, a, states, starts)[0] for a in every], dim=-1)
    value = (probabilities * q).sum(-1, keepdim=True)
    torch.testing.assert_close(value.flatten(), sample.old_values, atol=1e-4, rtol=1e-4)
    recomputed = torch.sqrt((probabilities * (q - value) ** 2).sum(-1)).numpy()
    assert recomputed.max() > 1e-2
    np.testing.assert_allclose(np.sort(recomputed), np.sort(np.stack(spreads).flatten()), atol=1e-4, rtol=1e-4)


def test_probe_tree_backup_advantages_weigh_what_they_carry_back_by_the_action_taken():
    """Tree-backup advantages: with every action taken surely (probability 1) they are SB3's GAE;
    an action taken with probability p passes back p of what it would have, and an episode start
    passes back nothing (a two-step hand example)."""
    import copy

    import numpy as np

    from benchmarks.memory_suite import specs
    from benchmarks.probes.credit import tree_backup_gae
    from benchmarks.tmaze_runs import build_model

    buffer = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024)[0]).rollout_buffer
    last_values, dones = fill_rollout(buffer)
    reference = copy.deepcopy(buffer)
    reference.compute_returns_and_advantage(last_values=last_values, dones=dones)
    sure = np.ones_like(buffer.values)
    gae = tree_backup_gae(
        buffer.rewards, buffer.values, buffer.episode_starts, sure, last_values.numpy(), dones, buffer.gamma, buffer.gae_lambda
    )
    np.testing.assert_allclose(gae, reference.advantages, rtol=1e-6, atol=1e-6)

    # two steps, one env: rewards 0 and 1, values 0, nothing after the second step (done)
    rewards, values = np.array([[0.0], [1.0]]), np.zeros((2, 1))
    for start, probability, first in ((0.0, 0.25, 0.99 * 0.8 * 0.25), (1.0, 0.25, 0.0)):
        starts = np.array([[0.0], [start]])
        advantages = tree_backup_gae(
            rewards, values, starts, np.array([[1.0], [probability]]), np.zeros(1), np.array([True]), 0.99, 0.8
        )
        np.testing.assert_allclose(advantages, [[first], [1.0]])


def test_probe_split_actor_credit_at_the_agents_lambda_is_ppos_gradient():
    """The split of the actor's credit (the cell's gradient from advantages at another lambda than the
    head's) at the agent's own lambda: the same policy-loss gradient on every parameter as RtxPPO's
    one surrogate; at lambda 0 the head's gradient stays that one and the cell's changes."""
    import numpy as np
    import torch

    from benchmarks.memory_suite import specs
    from benchmarks.probes.credit import split_actor_credit
    from benchmarks.tmaze_runs import build_model

    def policy_loss_gradients(cell_lambda: float | None) -> dict[str, torch.Tensor]:
        agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024, gae_lambda=0.8)[0])
        if cell_lambda is not None:
            split_actor_credit(agent, cell_lambda)
        agent.lr_schedule = lambda _: 0.0  # the rollout's network stays as it acted
        agent.learn(agent.n_steps * agent.n_envs)
        torch.manual_seed(0)
        np.random.seed(0)
        (sample,) = agent.rollout_buffer.get(batch_size=None)
        _, log_prob, _ = agent.policy.evaluate_actions(
            sample.observations, sample.actions.long().flatten(), sample.cell_states, sample.episode_starts
        )
        loss, _ = agent._policy_loss(sample, log_prob, agent.advantage_scale.scale, 0.2)
        agent.policy.zero_grad()
        loss.backward()
        return {name: p.grad.clone() for name, p in agent.policy.named_parameters() if p.grad is not None}

    plain, same, cell_at_0 = policy_loss_gradients(None), policy_loss_gradients(0.8), policy_loss_gradients(0.0)
    assert plain.keys() == same.keys()
    for name in plain:
        torch.testing.assert_close(same[name], plain[name], atol=1e-6, rtol=1e-4)
    head = [name for name in plain if name.startswith(("mlp_extractor.policy_net", "action_net"))]
    cell = [name for name in plain if name.startswith("cell_actor")]
    assert head and cell
    for name in head:
        torch.testing.assert_close(cell_at_0[name], plain[name], atol=1e-6, rtol=1e-4)
    assert any(not torch.allclose(cell_at_0[name], plain[name], atol=1e-5) for name in cell)


#: a one-layer AGaLiTe small enough for the credit splits' one-update gradient checks (two heads of
#: 8, eta 2: the fused projection has 5 * 8 + 3 * 2 rows per head)
SMALL_AGALITE = dict(n_layers=1, d_model=16, n_heads=2, d_head=8, d_ffc=16, eta=2, r=2)


def small_agalite_gradients(edit=None, **kwargs):
    """conftest's :func:`first_update_gradients` on CartPole with :data:`SMALL_AGALITE` behind RtxPPO:
    each parameter's gradient in the one update (``edit(model)`` applied first, if given)."""
    from conftest import first_update_gradients

    return first_update_gradients(
        "CartPole-v1", edit, policy_kwargs=dict(cell="agalite", cell_kwargs=SMALL_AGALITE), **kwargs
    )[1]


def test_probe_split_parameter_credit_of_the_whole_cell_is_rtxppos_cell_gae_lambda():
    """The split of credit by parameters, with every cell parameter on the cell's side, is RtxPPO's
    cell_gae_lambda: the same gradient on every parameter in one update from the same seed (the
    values' and the entropy's through both runs); with the memory's projections alone on that side,
    each projection's gradient is that split's and every other parameter's plain RtxPPO's."""
    import torch

    from benchmarks.probes.credit import is_memory_projection, split_parameter_credit

    def gradients(split=None, **kwargs) -> dict[str, torch.Tensor]:
        edit = None if split is None else (lambda model: split_parameter_credit(model, 0.0, split))
        return small_agalite_gradients(edit, **kwargs)

    library, plain = gradients(cell_gae_lambda=0.0), gradients()
    whole_cell, projections = gradients(lambda name: name.startswith("cell_actor.")), gradients(is_memory_projection)
    assert library.keys() == whole_cell.keys() == projections.keys() == plain.keys()
    assert any(is_memory_projection(name) for name in library)
    for name in library:
        torch.testing.assert_close(whole_cell[name], library[name], rtol=1e-4, atol=1e-9, msg=name)
        like = library if is_memory_projection(name) else plain
        torch.testing.assert_close(projections[name], like[name], rtol=1e-4, atol=1e-9, msg=name)
    # the two lambdas give the cell different gradients, so the checks above can fail
    assert not torch.allclose(library["cell_actor.embed.weight"], plain["cell_actor.embed.weight"], rtol=1e-4)


@pytest.mark.parametrize("part", ["values", "long head"])
def test_probe_split_parameter_credit_by_rows_gives_each_row_its_own_sides_gradient(part):
    """Split by rows of the memory's parameters (:func:`memory_rows`): each row on the cell's side
    gets the gradient of RtxPPO's cell_gae_lambda=0 (the whole cell at lambda 0), every other row and
    parameter a plain RtxPPO's, in one update from the same seed; the masks pick the rows they name."""
    import torch

    from benchmarks.probes.credit import memory_rows, split_parameter_credit

    masks = {}

    def split(model) -> None:
        rows = memory_rows(model.policy, part)
        masks.update({name: rows(name) for name, _ in model.policy.named_parameters()})
        split_parameter_credit(model, 0.0, rows)

    library, plain = small_agalite_gradients(cell_gae_lambda=0.0), small_agalite_gradients()
    by_rows = small_agalite_gradients(split)
    projection = "cell_actor.blocks.0.mixer.features.project.weight"
    assert projection in masks, sorted(masks)
    per_head = masks[projection][:, 0].view(2, 5 * 8 + 3 * 2)  # heads x [wk wq v beta g p1 p2 p3]
    if part == "values":
        assert per_head[:, 16:24].all() and per_head.sum() == 2 * 8
    else:
        assert per_head[0].all() and not per_head[1].any()
    for name in plain:
        mask = masks[name]
        expected = torch.where(mask, library[name], plain[name]) if isinstance(mask, torch.Tensor) else plain[name]
        torch.testing.assert_close(by_rows[name], expected, rtol=1e-4, atol=1e-9, msg=name)
    # the two lambdas give the masked rows different gradients, so the check above can fail
    rows = masks[projection]
    assert not torch.allclose(library[projection][rows], plain[projection][rows], rtol=1e-4)
    with pytest.raises(ValueError, match="part must be"):
        memory_rows(None, "keys")


def test_probe_split_value_routes_takes_each_gradient_once_and_routes_the_values_memory_path():
    """The values' two ways apart (:func:`split_value_routes`): at the agent's own lambda every
    parameter's gradient is a plain RtxPPO's (each path's share taken once, in one run or the other);
    at lambda 0 only the value path's parameters get another gradient, and its value rows' is neither
    plain RtxPPO's nor cell_gae_lambda=0's (their direct path keeps the agent's credit). Cells it
    cannot split are refused by name."""
    import torch

    from benchmarks.probes.credit import route_values, split_value_routes, values_own_rows

    kinds = {}

    def routed_at(cell_lambda: float):
        def edit(model) -> None:
            rows = values_own_rows(model.policy)
            kinds.update({name: rows(name) for name, _ in model.policy.named_parameters()})
            split_value_routes(model, cell_lambda)

        return edit

    plain, library = small_agalite_gradients(), small_agalite_gradients(cell_gae_lambda=0.0)
    at_own_lambda = small_agalite_gradients(routed_at(0.8), gae_lambda=0.8)
    routed = small_agalite_gradients(routed_at(0.0))
    projection = "cell_actor.blocks.0.mixer.features.project.weight"
    for name in plain:
        torch.testing.assert_close(at_own_lambda[name], plain[name], rtol=1e-4, atol=1e-9, msg=name)
        if not isinstance(kinds[name], torch.Tensor):  # off the value path: the agent's gradient
            torch.testing.assert_close(routed[name], plain[name], rtol=1e-4, atol=1e-9, msg=name)
    rows = kinds[projection]
    torch.testing.assert_close(routed[projection][~rows], plain[projection][~rows], rtol=1e-4, atol=1e-9)
    assert not torch.allclose(routed[projection][rows], plain[projection][rows], rtol=1e-3)
    assert not torch.allclose(routed[projection][rows], library[projection][rows], rtol=1e-3)

    from sb3_rtx import RtxPPO

    deeper = RtxPPO(
        "MlpRtxPolicy", "CartPole-v1", policy_kwargs=dict(cell="agalite", cell_kwargs=dict(SMALL_AGALITE, n_layers=2))
    )
    with pytest.raises(ValueError, match="one-layer cells"):
        route_values(deeper.policy)


def test_probe_split_credit_random_signs_flip_the_rest_per_episode():
    """The cell's credit at lambda 0 plus the rest of GAE's by random signs: in every episode the cell's
    advantages are either the agent's (sign +1) or lambda 0's less the rest (sign -1), one sign for the
    whole episode, and both signs occur."""
    import numpy as np

    from benchmarks.probes.credit import random_signs_per_episode, split_actor_credit

    agent, buffer, last_values, dones, at_zero, _ = credit_split_case()
    split_actor_credit(agent, 0.0, edit_rest=random_signs_per_episode(0))
    buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
    full, cell = buffer.advantages[..., 0], buffer.advantages[..., 1]
    rest = full - at_zero.advantages
    episodes = np.cumsum(buffer.episode_starts, axis=0)
    signs = set()
    for env in range(buffer.n_envs):
        for episode in np.unique(episodes[:, env]):
            steps = episodes[:, env] == episode
            plus = np.allclose(cell[steps, env], full[steps, env], atol=1e-5)
            minus = np.allclose(cell[steps, env], at_zero.advantages[steps, env] - rest[steps, env], atol=1e-5)
            assert plus or minus
            if np.abs(rest[steps, env]).max() > 1e-3:
                signs.add(plus)
    assert signs == {True, False}


def test_probe_split_credit_bounds_the_rest_step_by_step():
    """The cell's credit at lambda 0 plus the rest of GAE's clipped to each step's bound: the agent's
    where the bound is wider than the rest, lambda 0's where it is 0, and the bound's edge, on the
    rest's side, in between; the head's advantages are the agent's throughout."""
    import numpy as np

    from benchmarks.probes.credit import clipped_to, split_actor_credit

    agent, buffer, last_values, dones, at_zero, at_own = credit_split_case()
    rest = at_own.advantages - at_zero.advantages
    bounds = np.random.default_rng(1).choice([0.0, 0.3, 100.0], size=rest.shape).astype(np.float32)
    split_actor_credit(agent, 0.0, edit_rest=clipped_to(list(bounds)))
    buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
    head, cell = buffer.advantages[..., 0], buffer.advantages[..., 1]
    np.testing.assert_allclose(head, at_own.advantages, atol=1e-5)
    for bound, expected in ((0.0, at_zero.advantages), (100.0, at_own.advantages)):
        np.testing.assert_allclose(cell[bounds == bound], expected[bounds == bound], atol=1e-5)
    between = (bounds == 0.3) & (np.abs(rest) > 0.3)
    assert between.sum() > 10
    np.testing.assert_allclose(cell[between], (at_zero.advantages + 0.3 * np.sign(rest))[between], atol=1e-5)
    agent = credit_split_case()[0]
    split_actor_credit(agent, 0.0, edit_rest=clipped_to(list(bounds[:-1])))
    with pytest.raises(RuntimeError, match="bounds for a rollout"):
        agent.rollout_buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)


def test_probe_split_credit_weighs_the_rest_step_by_step():
    """The cell's credit at lambda 0 plus the rest of GAE's times each step's weight: lambda 0's at
    weight 0, the agent's at 1, halfway at 0.5; the head's advantages are the agent's."""
    import numpy as np

    from benchmarks.probes.credit import split_actor_credit, weighted_by

    agent, buffer, last_values, dones, at_zero, at_own = credit_split_case()
    weights = np.random.default_rng(1).choice([0.0, 0.5, 1.0], size=buffer.values.shape).astype(np.float32)
    split_actor_credit(agent, 0.0, edit_rest=weighted_by(lambda _: weights))
    buffer.compute_returns_and_advantage(last_values=last_values, dones=dones)
    np.testing.assert_allclose(buffer.advantages[..., 0], at_own.advantages, atol=1e-5)
    expected = at_zero.advantages + weights * (at_own.advantages - at_zero.advantages)
    assert np.abs(expected - at_own.advantages)[weights == 0.5].max() > 0.1
    np.testing.assert_allclose(buffer.advantages[..., 1], expected, atol=1e-5)


@pytest.mark.parametrize("per_state", [False, True])
@pytest.mark.parametrize("shown", [True, False])
def test_probe_inverse_model_weighs_a_step_by_how_much_its_action_shows(shown, per_state):
    """The inverse model's weights: after some rollouts whose next observations name the action taken
    (one-hot in the first inputs) they are near 1; where the observations are noise that says nothing
    of the actions, near 0. Steps that end an episode weigh 1 (GAE carries nothing past them). Per
    state, two steps with the same observation weigh the same whatever their actions."""
    import numpy as np

    from benchmarks.memory_suite import specs
    from benchmarks.probes.inverse_dynamics import action_shown_weights
    from benchmarks.tmaze_runs import build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024)[0])
    buffer, n_actions = agent.rollout_buffer, int(agent.action_space.n)
    weigh = action_shown_weights(agent, seed=0, per_state=per_state)
    rng = np.random.default_rng(0)
    for _ in range(25):
        buffer.observations[:] = rng.normal(size=buffer.observations.shape)
        actions = rng.integers(n_actions, size=buffer.values.shape)
        buffer.actions[:] = actions[..., None]
        buffer.log_probs[:] = np.log(1 / n_actions)
        buffer.episode_starts[:] = 0.0
        buffer.episode_starts[5, 0] = 1.0
        last = rng.normal(size=buffer.observations.shape[1:])
        if shown:
            buffer.observations[1:, :, :n_actions] = np.eye(n_actions)[actions[:-1]]
            last[:, :n_actions] = np.eye(n_actions)[actions[-1]]
        agent._last_obs = last.astype(np.float32)
        buffer.observations[7, 1] = buffer.observations[7, 0]
        buffer.actions[7, 1] = (buffer.actions[7, 0] + 1) % n_actions
        weights = weigh(buffer)
    assert weights[4, 0] == 1.0  # the step before an episode start
    inside = np.delete(weights.reshape(-1), 4 * buffer.n_envs)
    assert inside.mean() > (0.7 if per_state else 0.8) if shown else inside.mean() < 0.1
    if per_state:
        assert weights[7, 0] == weights[7, 1]


def test_probe_learning_rate_split_holds_through_sb3s_rate_updates():
    """The probes' learning-rate split (the cells at one fraction of the rate, the heads at another):
    every parameter in exactly one group, and after training each group's rate is its fraction of
    the schedule's (SB3 sets every group to the schedule's rate before each update)."""
    from benchmarks.memory_suite import specs
    from benchmarks.probes.tmaze_phases import scale_cell_learning_rate
    from benchmarks.tmaze_runs import PPO, build_model

    agent = build_model(specs(["AGaLiTe"], ["gauss-recall"], [0], 2, timesteps=1024)[0])
    scale_cell_learning_rate(agent, 0.25, 0.5)
    agent.learn(1024)
    groups = agent.policy.optimizer.param_groups
    grouped = [id(parameter) for group in groups for parameter in group["params"]]
    assert sorted(grouped) == sorted(id(parameter) for parameter in agent.policy.parameters())
    cell = {id(parameter) for parameter in agent.policy.cell_actor.parameters()}
    rates = {all(id(parameter) in cell for parameter in group["params"]): group["lr"] for group in groups}
    assert rates == {True: pytest.approx(0.25 * PPO["learning_rate"]), False: pytest.approx(0.5 * PPO["learning_rate"])}


def test_memory_suite_sets_are_disjoint_and_the_table_names_its_whole_command(tmp_path):
    """``--set dev|test|breadth``: defaults are chosen on the development set, the test set and the
    breadth check only reported, so no task is in two; the test set is broad (at least 8 tasks). The table is headed by the
    whole command that remakes it (every flag but ``--resume``/``--report-only``)."""
    from benchmarks.memory_suite import SETS, TASKS, main

    assert set(SETS) == {"dev", "test", "breadth"}
    assert not set(SETS["dev"]) & set(SETS["test"])
    assert not set(SETS["breadth"]) & (set(SETS["dev"]) | set(SETS["test"]))
    assert len(SETS["test"]) >= 8 and set(SETS["dev"]) | set(SETS["test"]) | set(SETS["breadth"]) <= set(TASKS)
    main(["--set", "test", "--models", "AGaLiTe", "--seeds", "3", "--report-only", "--out", str(tmp_path)])
    text = (tmp_path / "memory_suite_test.md").read_text()
    header = text.splitlines()[2]
    assert f"Made by `python -m benchmarks.memory_suite --set test --models AGaLiTe --seeds 3 --out {tmp_path}`" in header
    for task in SETS["test"]:
        assert f"| {task} " in text or "left out" in header, task


def test_memory_suite_reuses_a_run_made_under_another_label_and_leaves_the_flag_out_of_the_command(tmp_path, capsys):
    """``--reuse-runs``: a run of another sweep that trained what a run here would, under another
    label (a variant later made the default), is taken under this label, not trained again, and
    says where it came from; a run that trained something else is trained. The table's command
    leaves the flag out (the runs are seeded: the command without it makes the same table)."""
    import json

    from benchmarks.memory_suite import MODELS, main, specs
    from benchmarks.tmaze_runs import configuration

    # the variant that became today's AGaLiTe default keeps its label, and trains the same runs
    def configuration_of(model: str) -> str:
        return configuration(specs([model], ["recall-10"], [0], 8)[0].key())

    default = configuration_of("AGaLiTe")
    variant = next(model for model in MODELS if model != "AGaLiTe" and configuration_of(model) == default)
    common = ["--tasks", "recall-10", "--seeds", "0", "--eval-episodes", "8", "--timesteps", "2048", "--jobs", "1"]
    main([*common, "--models", variant, "--out", str(tmp_path / "variant")])
    earlier = tmp_path / "variant" / "memory_suite_runs.jsonl"
    (variant_run,) = [json.loads(line) for line in earlier.read_text().splitlines()]
    capsys.readouterr()
    main([*common, "--models", "AGaLiTe", "LSTM", "--out", str(tmp_path / "default"), "--reuse-runs", str(earlier)])
    printed = capsys.readouterr().out
    trained = [line.split()[0] for line in printed.splitlines() if "recall-10 seed 0: score" in line]
    assert trained == ["LSTM"]
    lines = (tmp_path / "default" / "memory_suite_runs.jsonl").read_text().splitlines()
    runs = {run["label"]: run for run in map(json.loads, lines)}
    assert runs["AGaLiTe"]["reused_from"] == f"{earlier}: {variant}"
    assert runs["AGaLiTe"]["success"] == variant_run["success"] and runs["AGaLiTe"]["curve"] == variant_run["curve"]
    # under this label's keywords as given, not the variant's
    assert runs["AGaLiTe"]["policy_kwargs"] == specs(["AGaLiTe"], ["recall-10"], [0], 8)[0].policy_kwargs
    assert runs["AGaLiTe"]["policy_kwargs"] != variant_run["policy_kwargs"]
    assert "reused_from" not in runs["LSTM"]
    text = (tmp_path / "default" / "memory_suite.md").read_text()
    assert "--reuse-runs" not in text and f"--models AGaLiTe LSTM --out {tmp_path / 'default'}`" in text


MEMORY_SUITE_TABLES = sorted(
    table.relative_to(ROOT).as_posix()
    for table in (ROOT / "benchmarks" / "results").rglob("memory_suite*.md")
    if "Made by `python -m benchmarks.memory_suite " in table.read_text()
)


@pytest.mark.parametrize("table", MEMORY_SUITE_TABLES)
def test_report_only_with_the_tables_own_command_remakes_it_byte_for_byte(table, tmp_path):
    """Every committed memory-suite table names the whole command that made it; that command, run
    with ``--report-only`` on today's code, rewrites the same table from the committed runs file,
    byte for byte (here into a copy: the runs file is copied and ``--out`` pointed at it). A table
    whose runs today's models or settings no longer key (a default changed under it) fails here:
    it belongs in docs/history/ with the commit it was made at."""
    import shlex

    from benchmarks.memory_suite import main

    committed_path = ROOT / table
    committed = committed_path.read_text()
    command = re.search(r"Made by `(python -m benchmarks\.memory_suite [^`]*)`", committed).group(1)
    argv = shlex.split(command)[3:]
    out = argv[argv.index("--out") + 1]
    assert (ROOT / out).resolve() == committed_path.parent.resolve()
    runs = committed_path.name.replace(".md", "_runs.jsonl")
    shutil.copy(committed_path.parent / runs, tmp_path / runs)
    argv[argv.index("--out") + 1] = str(tmp_path)
    main([*argv, "--report-only"])
    remade = (tmp_path / committed_path.name).read_text().replace(str(tmp_path), out)
    assert remade == committed


@pytest.mark.parametrize("module, csv_path", [("op_count", "op_count.csv"), ("probes.flop_split", "probes/flop_split.csv")])
def test_the_published_exact_counts_are_todays(module, csv_path):
    """Operation and FLOP counts are exact (no timing), so a committed table of them must be what
    today's code counts: a change to a cell that moves a count remakes the table in the same commit.
    Checked at the small size (seconds; the paper size's operation counts take half a minute),
    every integer column."""
    import csv
    import importlib

    count = importlib.import_module(f"benchmarks.{module}").count
    with open(ROOT / "benchmarks" / "results" / csv_path, newline="") as file:
        committed = {row["cell"]: row for row in csv.DictReader(file) if row["size"] == "small"}
    for row in count(("small",)):
        counts = {key: value for key, value in row.items() if isinstance(value, int)}
        published = {key: int(committed[row["cell"]][key]) for key in counts}
        assert counts == published, f"{row['cell']}: counted {counts}, {csv_path} says {published}"


def test_every_committed_table_names_the_whole_command_that_made_it():
    """Each table under benchmarks/results/ says ``Made by `python -m benchmarks...``; one in a
    subfolder names that folder as ``--out`` (a table whose command cannot remake it is history, and
    lives in docs/history/ with the commit it was made at)."""
    results = ROOT / "benchmarks" / "results"
    tables = sorted(results.rglob("*.md"))
    assert len(tables) >= 8
    for table in tables:
        made_by = re.search(r"Made by `(python -m benchmarks\.[^`]*)`", table.read_text())
        assert made_by, f"{table.relative_to(ROOT)} does not name the command that made it"
        folder = table.parent.relative_to(ROOT).as_posix()
        if table.parent not in (results, results / "probes"):
            assert f"--out {folder}" in made_by.group(1), (
                f"{table.relative_to(ROOT)}: its command does not name --out {folder}"
            )


def test_probe_adam_steps_reads_the_damping_that_eps_puts_on_each_step():
    """A parameter whose clipped gradient is far below Adam's eps is damped nearly to nothing; one far
    above it not at all (the figures the investigation quotes from benchmarks.probes.adam_steps)."""
    import torch

    from benchmarks.probes.adam_steps import step_damping

    small, large = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))
    optimizer = torch.optim.Adam([small, large], lr=1e-3, eps=1e-5)
    for _ in range(5):
        small.grad, large.grad = torch.full((3,), 1e-7), torch.full((2, 2), -1e-2)
        optimizer.step()
    rows = {row["parameter"]: row for row in step_damping(optimizer, {small: "small", large: "large"})}
    assert rows["small"]["median_rms"] == pytest.approx(1e-7, rel=1e-3)
    assert rows["small"]["below_eps"] == 1.0 and rows["small"]["damping"] == pytest.approx(1e-7 / (1e-7 + 1e-5), rel=1e-3)
    assert rows["large"]["shape"] == "2x2" and rows["large"]["below_eps"] == 0.0
    assert rows["large"]["damping"] == pytest.approx(1e-2 / (1e-2 + 1e-5), rel=1e-3)


def test_throughput_compiled_rows_follow_their_eager_rows_and_compare_like_with_like():
    """``--compile-acting`` adds each transformer row again right after it, with the acting step compiled
    (and AGaLiTe's compiled training row too); the LSTM rows stay eager."""
    from benchmarks.train_throughput import COMPILED_ACTING, candidates

    rows = candidates(32, "paper", compile_training=True, compile_acting=True)
    labels = [label for label, _, _ in rows]
    assert labels[3:] == [
        "RtxPPO agalite paper",
        "RtxPPO agalite paper" + COMPILED_ACTING,
        "RtxPPO agalite paper, compile_training",
        "RtxPPO agalite paper, compile_training" + COMPILED_ACTING,
        "RtxPPO gtrxl paper M=128",
        "RtxPPO gtrxl paper M=128" + COMPILED_ACTING,
    ]
    for label, _, kwargs in rows:
        policy_kwargs = kwargs.get("policy_kwargs") or {}
        assert policy_kwargs.get("compile_acting", False) == (COMPILED_ACTING in label)
        assert policy_kwargs.get("compile_training", False) == ("compile_training" in label)
