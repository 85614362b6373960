"""The zoo's checks of yml entries and its Optuna search space, in-process (no CLI, no training)."""

from __future__ import annotations

import optuna
import pytest
import torch
import yaml
from rl_zoo3 import hyperparams_opt, utils
from stable_baselines3.common.env_util import make_vec_env
from torch import nn

from sb3_rtx import RtxPPO
from sb3_rtx.cells import make_cell
from sb3_rtx.cells.variants import CHOICES
from sb3_rtx.ppo import check_rollout_sizes
from sb3_rtx.zoo import ALGO, default_config, register
from sb3_rtx.zoo.config import check_ppo_rtx_hyperparams, check_tune_cells
from sb3_rtx.zoo.sampler import convert_ppo_rtx_params, sample_ppo_rtx_params


def entry(**overrides):
    hyperparams = dict(policy="MlpRtxPolicy", n_steps=32, batch_size=64, sequence_length=16)
    hyperparams.update(overrides)
    return hyperparams


def check(hyperparams, n_envs=4):
    check_ppo_rtx_hyperparams(hyperparams, n_envs=n_envs, where="test.yml [Env-v0]")
    return hyperparams


def test_register_fills_the_three_rl_zoo3_tables():
    register()
    assert utils.ALGOS[ALGO] is RtxPPO
    assert ALGO in hyperparams_opt.HYPERPARAMS_SAMPLER and ALGO in hyperparams_opt.HYPERPARAMS_CONVERTER


def test_every_shipped_entry_passes_the_checks_and_builds_its_cell():
    with open(default_config()) as f:
        entries = yaml.safe_load(f)
    assert {"CartPoleNoVel-v1", "sb3_rtx/CueRecall-v0", "sb3_rtx/TMaze-v0", "PendulumNoVel-v1", "Acrobot-v1"} <= set(entries)
    for env_id, raw in entries.items():
        hyperparams = {k: v for k, v in raw.items() if k not in ("n_timesteps", "n_envs", "normalize")}
        if isinstance(hyperparams.get("policy_kwargs"), str):
            hyperparams["policy_kwargs"] = eval(hyperparams["policy_kwargs"], {"nn": nn})  # as rl_zoo3 does
        hyperparams = {k: v for k, v in hyperparams.items() if not isinstance(v, str) or not v.startswith("lin_")}
        check_ppo_rtx_hyperparams(hyperparams, n_envs=raw.get("n_envs", 1), where=env_id)
        policy_kwargs = hyperparams.get("policy_kwargs", {})
        make_cell(policy_kwargs.get("cell", "agalite"), 4, **policy_kwargs.get("cell_kwargs", {}))


@pytest.mark.parametrize(
    "overrides, named",
    [
        (dict(policy="MlpLstmPolicy"), "policy: 'MlpLstmPolicy' is not an RtxPPO policy"),
        (dict(lstm_hidden_size=64), "unknown key(s) ['lstm_hidden_size']"),
        (dict(policy_kwargs=dict(enable_critic_lstm=True)), "policy_kwargs.enable_critic_lstm"),
        (dict(policy_kwargs=dict(cell="transformer")), "policy_kwargs.cell: unknown cell 'transformer'"),
        (dict(policy_kwargs=dict(cell_kwargs=dict(eta=2.5))), "policy_kwargs.cell_kwargs.eta must be a positive int"),
        (dict(policy_kwargs=dict(cell_kwargs=dict(r=0))), "policy_kwargs.cell_kwargs.r must be a positive int"),
        (dict(policy_kwargs=dict(cell_kwargs=dict(memory_len=8))), "policy_kwargs.cell_kwargs.memory_len"),
        (dict(policy_kwargs=dict(cell="gtrxl", cell_kwargs=dict(d_model=30))), "d_model=30 is not divisible by n_heads=4"),
        (dict(sequence_length=12), "sequence_length=12 must divide n_steps=32"),
        (dict(batch_size=40), "batch_size=40 must be a multiple of sequence_length=16"),
        (dict(cell_gae_lambda=2), "cell_gae_lambda must be in [0, 1] or None, got 2"),
        (dict(gae_lambda=-0.5), "gae_lambda must be in [0, 1], got -0.5"),
    ],
)
def test_a_bad_entry_raises_a_value_error_naming_file_env_and_key(overrides, named):
    with pytest.raises(ValueError, match=r"invalid ppo_rtx hyperparameters in test\.yml \[Env-v0\]") as error:
        check(entry(**overrides))
    assert named in str(error.value)


def test_heads_split_d_model_unless_d_head_is_given():
    derived = check(entry(policy_kwargs=dict(cell="agalite", cell_kwargs=dict(d_model=64, n_heads=4))))
    assert derived["policy_kwargs"]["cell_kwargs"]["d_head"] == 16
    explicit = check(entry(policy_kwargs=dict(cell_kwargs=dict(d_model=30, n_heads=4, d_head=8))))
    assert explicit["policy_kwargs"]["cell_kwargs"]["d_head"] == 8
    untouched = check(entry(policy_kwargs=dict(cell="agalite")))  # no sizes given: the paper's defaults
    assert "d_head" not in untouched["policy_kwargs"].get("cell_kwargs", {})


def test_tune_cells_is_checked_and_normalised():
    assert check_tune_cells(None, "w") is None
    assert check_tune_cells(["AGaLiTe", "lstm"], "w") == ["agalite", "lstm"]
    with pytest.raises(ValueError, match="tune_cells: unknown cell"):
        check_tune_cells(["agalite", "mamba"], "w")


@pytest.mark.parametrize("n_envs", [1, 3, 8])
def test_every_sampled_configuration_is_valid_and_the_converter_rebuilds_it(n_envs):
    """200 random trials over all cells: each is a valid RtxPPO set-up; --trial-id gets the same values."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=n_envs), direction="maximize")
    cells = ["agalite", "galite", "gtrxl", "lstm"]
    seen = set()
    for _ in range(200):
        trial = study.ask()
        hyperparams = sample_ppo_rtx_params(trial, 0, n_envs, {}, base_policy_kwargs=dict(ortho_init=False), tune_cells=cells)
        study.tell(trial, 0.0)
        policy_kwargs = hyperparams["policy_kwargs"]
        seen.add(policy_kwargs["cell"])
        assert policy_kwargs["ortho_init"] is False  # the entry's untuned policy keywords survive
        check(dict(hyperparams, policy="MlpRtxPolicy"), n_envs=n_envs)
        assert hyperparams["batch_size"] <= hyperparams["n_steps"] * n_envs  # no oversized minibatch
        check_rollout_sizes(hyperparams["n_steps"], n_envs, hyperparams["batch_size"], hyperparams["sequence_length"])
        rebuilt = convert_ppo_rtx_params(trial.params, n_envs=n_envs)
        rebuilt["policy_kwargs"]["ortho_init"] = False
        assert rebuilt == hyperparams
    assert seen == set(cells)
    # the value convolution's start is tuned for the gated cells, every start sampled
    starts = {t.params["value_conv_init"] for t in study.trials if t.params["cell"] in ("galite", "agalite")}
    assert starts == set(CHOICES["value_conv_init"])
    assert {t.params["cell_gae_lambda"] for t in study.trials} == {None, 0.0}  # the memory's own lambda, both ways


def test_the_sampled_model_trains_a_step():
    """A sampled trial builds the RtxPPO it describes (every sampled value, under RtxPPO's name for
    it, reaches the model) and that model trains: one rollout, one update that moves the weights.
    (The rollout, the epochs and the cell's sizes are shrunk, to keep the test fast.)"""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    hyperparams = sample_ppo_rtx_params(trial, 0, 2, {}, tune_cells=["agalite"])
    hyperparams.update(n_steps=16, sequence_length=8, batch_size=16, n_epochs=1)
    hyperparams["policy_kwargs"]["cell_kwargs"].update(n_layers=1, d_model=16, n_heads=2, d_head=8)
    model = RtxPPO("MlpRtxPolicy", make_vec_env("sb3_rtx/CueRecall-v0", n_envs=2, seed=0), seed=0, **hyperparams)
    params = trial.params
    assert model.gamma == pytest.approx(1 - params["one_minus_gamma"]) and model.gamma == hyperparams["gamma"]
    assert model.gae_lambda == pytest.approx(1 - params["one_minus_gae_lambda"])
    assert (
        model.cell_gae_lambda == params["cell_gae_lambda"]
        and model.rollout_buffer.cell_gae_lambda == params["cell_gae_lambda"]
    )
    assert (model.learning_rate, model.ent_coef, model.max_grad_norm, model.clip_range(1.0)) == (
        params["learning_rate"], params["ent_coef"], params["max_grad_norm"], params["clip_range"])  # fmt: skip
    cell = model.policy.cell_actor
    assert (cell.name, cell.eta, cell.r) == ("agalite", params["eta"], params["r"])
    assert cell.value_conv_init == params["value_conv_init"]
    assert model.policy.activation_fn is hyperparams["policy_kwargs"]["activation_fn"]
    head = [layer.out_features for layer in model.policy.mlp_extractor.policy_net if isinstance(layer, nn.Linear)]
    assert head == hyperparams["policy_kwargs"]["net_arch"]["pi"]
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(32)
    assert (model.num_timesteps, model._n_updates) == (32, 1)  # one rollout of 16 steps x 2 envs, one epoch
    assert not all(torch.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())
