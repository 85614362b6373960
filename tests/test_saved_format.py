"""The save format: models and policies saved by earlier releases load and compute what they
computed when saved; today's keywords are taken as given; a format this release cannot read says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sb3_rtx import RtxPPO
from sb3_rtx.policies import RtxActorCriticPolicy
from sb3_rtx.saved_format import SAVE_FORMAT, SavedFormatError, convert_policy_kwargs

FIXTURES = Path(__file__).parent / "data" / "saved_models"
CELLS = ("agalite", "galite", "gtrxl", "lstm")
FORMATS = ("format1", "format2", "format3")


def replay(policy: RtxActorCriticPolicy, predict, observations: np.ndarray, starts: np.ndarray):
    """Deterministic actions and values along the fixture's observations (as make_saved_models.py)."""
    state, actions, values = None, [], []
    for obs, start in zip(observations, starts, strict=True):
        state_tensors = policy.initial_state(len(obs)) if state is None else tuple(torch.as_tensor(s) for s in state)
        with torch.no_grad():
            value = policy.predict_values(torch.as_tensor(obs), state_tensors, torch.as_tensor(start, dtype=torch.float32))
        action, state = predict(obs, state=state, episode_start=start, deterministic=True)
        actions.append(action)
        values.append(value.numpy().reshape(-1))
    return np.stack(actions), np.stack(values)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cell", CELLS)
def test_saved_model_loads_and_computes_what_it_computed_when_saved(cell, fmt):
    expected = np.load(FIXTURES / f"{cell}_{fmt}.npz")
    model = RtxPPO.load(FIXTURES / f"{cell}_{fmt}.zip", device="cpu")
    actions, values = replay(model.policy, model.predict, expected["observations"], expected["starts"])
    np.testing.assert_array_equal(actions, expected["actions"])
    np.testing.assert_allclose(values, expected["values"], rtol=1e-5, atol=1e-6)
    assert model.save_format == SAVE_FORMAT
    if cell in ("agalite", "galite"):
        # what the release computed, recorded: format 1 predates the value convolution
        assert model.policy_kwargs["cell_kwargs"]["value_conv"] == (1 if fmt == "format1" else 4)
        assert model.policy.cell_actor.value_conv == model.policy_kwargs["cell_kwargs"]["value_conv"]
    # formats 1 and 2 predate actor_input_scale: the actor's head read the output as it is
    expected_scale = 0.2 if (cell, fmt) == ("agalite", "format3") else 1.0
    assert model.policy.actor_input_scale == model.policy_kwargs["actor_input_scale"] == expected_scale


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cell", CELLS)
def test_saved_policy_loads_and_computes_what_it_computed_when_saved(cell, fmt):
    expected = np.load(FIXTURES / f"{cell}_{fmt}.npz")
    policy = RtxActorCriticPolicy.load(str(FIXTURES / f"{cell}_{fmt}_policy.pth"), device="cpu")
    actions, values = replay(policy, policy.predict, expected["observations"], expected["starts"])
    np.testing.assert_array_equal(actions, expected["actions"])
    np.testing.assert_allclose(values, expected["values"], rtol=1e-5, atol=1e-6)


def test_a_model_saved_today_records_the_format_and_reloads_exactly(tmp_path):
    model = RtxPPO("MlpRtxPolicy", "sb3_rtx/CueRecall-v0", n_steps=16, batch_size=16, seed=3)
    model.save(tmp_path / "model.zip")
    loaded = RtxPPO.load(tmp_path / "model.zip", device="cpu")
    assert loaded.save_format == SAVE_FORMAT
    assert loaded.policy_kwargs == model.policy_kwargs  # every choice recorded, the cell named
    assert loaded.policy_kwargs["cell"] == "agalite" and loaded.policy_kwargs["cell_kwargs"]["value_conv"] == 4
    model.policy.save(str(tmp_path / "policy.pth"))
    assert torch.load(tmp_path / "policy.pth", weights_only=False)["save_format"] == SAVE_FORMAT


@pytest.mark.parametrize("cell", ["agalite", "galite"])
def test_naming_the_values_a_model_resolves_to_builds_the_same_model(cell):
    """Keywords are taken as given: naming the variant, normaliser and gate start that the model
    would resolve to anyway (what a format-1 file records) changes nothing else."""
    from sb3_rtx.policies import DEFAULT_CELL_KWARGS

    plain = RtxPPO("MlpRtxPolicy", "sb3_rtx/CueRecall-v0", n_steps=16, batch_size=16, seed=0, policy_kwargs=dict(cell=cell))
    resolved = plain.policy_kwargs["cell_kwargs"]
    named = {**DEFAULT_CELL_KWARGS[cell], **{key: resolved[key] for key in ("variant", "normaliser", "gate_init")}}
    explicit = RtxPPO(
        "MlpRtxPolicy", "sb3_rtx/CueRecall-v0", n_steps=16, batch_size=16, seed=0,
        policy_kwargs=dict(cell=cell, cell_kwargs=named),
    )  # fmt: skip
    assert explicit.policy_kwargs["cell_kwargs"] == resolved
    for a, b in zip(plain.policy.state_dict().values(), explicit.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_format_1_conversion_fills_each_choice_with_what_it_was_before_it_existed():
    saved = dict(cell="galite", cell_kwargs=dict(d_model=16, variant="default", normaliser="sum", gate_init="long"))
    converted = convert_policy_kwargs(saved, None)
    assert converted["cell_kwargs"] == dict(
        d_model=16, variant="default", normaliser="sum", gate_init="long",
        feature_map="relu", read_norm="none", read_merge="gated", memory_input="stream", value_conv=1,
    )  # fmt: skip
    # a choice the file recorded is kept; no cell named is format 1's default cell, AGaLiTe
    kept = convert_policy_kwargs(dict(cell_kwargs=dict(saved["cell_kwargs"], feature_map="softplus")), None)
    assert kept["cell_kwargs"]["feature_map"] == "softplus" and kept["cell_kwargs"]["read_norm"] == "none"
    assert convert_policy_kwargs(dict(cell="lstm", cell_kwargs=dict(hidden_size=8)), None) == dict(
        cell="lstm", cell_kwargs=dict(hidden_size=8), actor_input_scale=1.0
    )
    assert convert_policy_kwargs(saved, SAVE_FORMAT) == saved  # today's format: as saved


def test_format_2_conversion_keeps_the_actor_reading_the_output_as_it_is():
    """A format-2 model's actor head read the cell's output unscaled (the keyword did not exist): it
    loads with ``actor_input_scale=1``, not today's default behind AGaLiTe (0.2)."""
    saved = dict(cell="agalite", cell_kwargs=dict(d_model=16, variant="default"))
    assert convert_policy_kwargs(saved, 2) == dict(saved, actor_input_scale=1.0)
    assert convert_policy_kwargs(dict(saved, actor_input_scale=0.5), 2)["actor_input_scale"] == 0.5


def test_a_file_this_release_cannot_read_says_why():
    with pytest.raises(SavedFormatError, match=r"did not record its variant, normaliser, gate_init"):
        convert_policy_kwargs(dict(cell="agalite", cell_kwargs=dict(d_model=16)), None)
    with pytest.raises(
        SavedFormatError, match=rf"saved in format 99; this release of sb3_rtx reads formats 1 to {SAVE_FORMAT}"
    ):
        convert_policy_kwargs(dict(cell="agalite", cell_kwargs={}), 99)
