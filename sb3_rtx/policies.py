"""Recurrent actor-critic policies whose memory is a cell from :mod:`sb3_rtx.cells`.

The interface follows sb3-contrib's ``RecurrentActorCriticPolicy`` (the policy of ``RecurrentPPO``):
``predict(observation, state, episode_start, deterministic)`` returns ``(actions, state)`` and the
caller carries ``state`` between steps. Differences a RecurrentPPO user should know:

* the state is the cell's state, a tuple of numpy arrays with the env (batch) dimension first,
  not LSTM ``(h, c)`` with the layer dimension first;
* by default actor and critic share one cell (``shared_cell=True``) and both losses train it,
  as in the AGaLiTe paper: a second transformer for the critic would double the cost of every
  step. ``shared_cell=False`` gives the critic a cell of its own (RecurrentPPO's default for LSTMs).

Layout of a forward pass: features extractor -> cell -> MLP heads (``net_arch``) -> action
distribution / value. Sequences are passed time-major: a flat batch of ``T * B`` observations is
``T`` steps of ``B`` envs, and ``episode_starts`` has shape ``(T, B)`` (or ``(B,)`` for one step).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    MlpExtractor,
    NatureCNN,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.common.utils import get_device
from torch import nn
from torch.func import functional_call

from sb3_rtx.cells import CellState, RecurrentCell, make_cell
from sb3_rtx.cells.base import check_positive_number
from sb3_rtx.saved_format import SAVE_FORMAT, convert_policy_kwargs

#: what ``predict`` takes and returns as ``state``: the cell state(s) as numpy arrays, env dim first
NumpyState = tuple[np.ndarray, ...]

_SMALL_TRANSFORMER = dict(n_layers=1, d_model=64, n_heads=4, d_head=16, d_ffc=64)
#: One small layer for the transformer cells: what a policy builds when no ``cell_kwargs`` are given.
#: The cells' own defaults are the paper's T-Maze sizes (4 layers of d_model 128), which on a 2-core
#: CPU train at 0.9x RecurrentPPO's speed; this size trains at about 2x and learns the memory suite
#: (docs, "Learning memory"). The LSTM keeps sb3-contrib's 256 units.
DEFAULT_CELL_KWARGS: dict[str, dict[str, Any]] = {
    "agalite": dict(_SMALL_TRANSFORMER, eta=4, r=2),
    "galite": dict(_SMALL_TRANSFORMER, eta=4),
    "gtrxl": dict(_SMALL_TRANSFORMER, memory_len=64),
    "lstm": {},
}


def _is_default_agalite(cell: RecurrentCell) -> bool:
    return cell.name == "agalite" and getattr(cell, "variant", None) == "default"


def default_actor_input_scale(cell: RecurrentCell) -> float:
    """What the actor's head reads the cell's output times when ``actor_input_scale`` is not given: 0.2
    behind AGaLiTe's default variant, whose output is about unit size per feature (26 times an LSTM's):
    an Adam step moves a layer's output in proportion to its input's size, so each update moved the
    actor far (docs, "How the defaults were found", "The actor's quieter input"); 1 behind every other cell,
    where it was not measured, and behind the paper's variant, which stays as published."""
    return 0.2 if _is_default_agalite(cell) else 1.0


def default_value_init_scale(cell: RecurrentCell) -> float:
    """What the value output layer starts at, times SB3's initialisation, when ``value_init_scale`` is
    not given: 0 behind AGaLiTe's default variant, whose output starts at about unit size per feature,
    where SB3's start makes the value a random function of the cell's features, under observation
    noise a function of the noise, as large as a whole episode's return (docs, "How the defaults were
    found", "The value's start and noisy recall"); 1 (SB3's) behind every other cell, where it was
    not measured, and behind the paper's variant, which stays as published."""
    return 0.0 if _is_default_agalite(cell) else 1.0


class _ActionTerms(nn.Module):
    """The actor's head, from the cell's output to the actions' log-likelihood and entropy, as a
    module of its own: ``torch.func.functional_call`` runs it with the head's parameters detached
    (not registered on the policy, so the policy's module tree has no cycle)."""

    def __init__(self, policy: RtxActorCriticPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, latent_pi: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        distribution = self.policy._get_action_dist_from_latent(self.policy.latent_actor(latent_pi))
        return distribution.log_prob(actions), distribution.entropy()


def check_finite_observation(obs: PyTorchObs) -> None:
    """Raise a clear error for NaN or inf observations (they would silently poison the cell state)."""
    items = obs.items() if isinstance(obs, dict) else [("", obs)]
    for key, value in items:
        if value.is_floating_point() and not torch.isfinite(value).all():
            where = f" (key {key!r})" if key else ""
            raise ValueError(
                f"observation{where} contains NaN or inf values; a recurrent policy would carry them in its "
                "state into every later step. Check the environment or wrap it with VecCheckNan."
            )


class RtxActorCriticPolicy(ActorCriticPolicy):
    """Actor-critic policy with a recurrent transformer (or LSTM) cell between features and heads.

    Takes every argument of SB3's ``ActorCriticPolicy`` plus:

    :param cell: cell name, one of ``"agalite"`` (default), ``"galite"``, ``"gtrxl"``, ``"lstm"``
    :param cell_kwargs: keywords for :func:`sb3_rtx.cells.make_cell` (``n_layers``, ``d_model``,
        ``n_heads``, ``d_head``, ``d_ffc``, ``eta``, ``r``, ``memory_len``, ``hidden_size``,
        ``variant``, ...), passed as they are; ``None`` (default) gives :data:`DEFAULT_CELL_KWARGS`,
        one small layer (an empty dict gives the cell's own defaults, the paper's T-Maze sizes)
    :param shared_cell: one cell for actor and critic, trained by both losses (default), or a
        separate critic cell (doubles the cost of every step)
    :param compile_acting: run the cells' acting step through ``torch.compile``
        (:meth:`~sb3_rtx.cells.base.RecurrentCell.compile_acting`): several times faster steps at
        small batch, after seconds of compiling per new batch size; training is unaffected
    :param compile_training: run AGaLiTe's training form's chunk work through ``torch.compile``
        (:meth:`~sb3_rtx.cells.base.RecurrentCell.compile_training`): a faster training step on a CPU,
        after tens of seconds of compiling on the first update; other cells raise a ``ValueError``
    :param critic_init_scale: the critic head's first layer (the first ``vf`` layer of ``net_arch``, or
        the value output where there is none) starts this many times its SB3 initialisation (1:
        SB3's); smaller starts the value function near zero behind a cell whose output is large
        (docs, "Learning memory", "Control: the output's scale")
    :param value_init_scale: the value output layer (SB3's ``value_net``, after the critic's hidden
        layers) starts this many times its SB3 initialisation (1: SB3's; 0: the value starts at
        exactly 0, while the critic's hidden layers keep their start); ``None`` (default) takes
        :func:`default_value_init_scale` of the cell: 0 for AGaLiTe's default variant, 1 (SB3's) for
        every other cell
    :param actor_input_scale: the actor's head (its ``pi`` layers of ``net_arch``, then the action
        output) reads the cell's output times this factor; the critic's head reads it as it is (1:
        both read the same). A plain product, so the gradient the actor sends back into the cell is
        scaled alike. Smaller makes each update move the policy less behind a cell whose output is
        large. ``None`` (default) takes :func:`default_actor_input_scale` of the cell: 0.2 for
        AGaLiTe's default variant, 1 for every other cell
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.Tanh,
        ortho_init: bool = True,
        use_sde: bool = False,
        log_std_init: float = 0.0,
        full_std: bool = True,
        use_expln: bool = False,
        squash_output: bool = False,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = True,
        normalize_images: bool = True,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        cell: str = "agalite",
        cell_kwargs: dict[str, Any] | None = None,
        shared_cell: bool = True,
        compile_acting: bool = False,
        compile_training: bool = False,
        critic_init_scale: float = 1.0,
        value_init_scale: float | None = None,
        actor_input_scale: float | None = None,
    ):
        self.cell_name = cell
        check_positive_number(type(self).__name__, critic_init_scale=critic_init_scale)
        if actor_input_scale is not None:
            check_positive_number(type(self).__name__, actor_input_scale=actor_input_scale)
        # None until the cell is built: its default depends on the cell (default_actor_input_scale)
        self.actor_input_scale: float | None = None if actor_input_scale is None else float(actor_input_scale)
        self.critic_init_scale = float(critic_init_scale)
        if value_init_scale is not None:
            check_positive_number(type(self).__name__, zero_allowed=True, value_init_scale=value_init_scale)
        # None until the cell is built: its default depends on the cell (default_value_init_scale)
        self.value_init_scale: float | None = None if value_init_scale is None else float(value_init_scale)
        if cell_kwargs is None:
            # (a name that is not a known cell gets {} here and make_cell's error naming the valid ones)
            cell_kwargs = DEFAULT_CELL_KWARGS.get(cell.lower(), {}) if isinstance(cell, str) else {}
        # taken as given: a saved model's older keywords are converted when it is loaded (saved_format.py)
        self.cell_kwargs = dict(cell_kwargs)
        self.shared_cell = shared_cell
        if not isinstance(compile_acting, bool):
            raise TypeError(f"compile_acting must be True or False, got {compile_acting!r}")
        self.compile_acting = compile_acting
        if not isinstance(compile_training, bool):
            raise TypeError(f"compile_training must be True or False, got {compile_training!r}")
        self.compile_training = compile_training
        if shared_cell and not share_features_extractor:
            raise ValueError("shared_cell=True needs share_features_extractor=True (one cell reads one set of features)")
        # the cell is built before the MLP heads (they read its output), see _build_mlp_extractor
        self._cell_output_dim: int | None = None
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch,
            activation_fn,
            ortho_init,
            use_sde,
            log_std_init,
            full_std,
            use_expln,
            squash_output,
            features_extractor_class,
            features_extractor_kwargs,
            share_features_extractor,
            normalize_images,
            optimizer_class,
            optimizer_kwargs,
        )

    # ----------------------------------------------------------------- building
    def _build_mlp_extractor(self) -> None:
        features_dim = int(self.features_dim)  # SB3 may report it as a numpy int
        self.cell_actor: RecurrentCell = make_cell(self.cell_name, features_dim, **self.cell_kwargs)
        self.cell_critic: RecurrentCell | None = (
            None if self.shared_cell else make_cell(self.cell_name, features_dim, **self.cell_kwargs)
        )
        self.mlp_extractor = MlpExtractor(
            self.cell_actor.output_dim, net_arch=self.net_arch, activation_fn=self.activation_fn, device=self.device
        )
        for cell in self.cells:
            cell.compile_acting(self.compile_acting)
            cell.compile_training(self.compile_training)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        if self.critic_init_scale != 1.0:
            # after SB3's orthogonal initialisation, which _build applies last
            layers = [m for m in self.mlp_extractor.value_net.modules() if isinstance(m, nn.Linear)]
            first = layers[0] if layers else self.value_net
            with torch.no_grad():
                first.weight.mul_(self.critic_init_scale)
        # the cell's defaults, now that super()._build has built it
        if self.actor_input_scale is None:
            self.actor_input_scale = default_actor_input_scale(self.cell_actor)
        if self.value_init_scale is None:
            self.value_init_scale = default_value_init_scale(self.cell_actor)
        if self.value_init_scale != 1.0:
            with torch.no_grad():  # SB3 starts the bias at 0
                self.value_net.weight.mul_(self.value_init_scale)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            cell=self.cell_name,
            cell_kwargs=self.resolved_cell_kwargs(),
            shared_cell=self.shared_cell,
            compile_acting=self.compile_acting,
            compile_training=self.compile_training,
            critic_init_scale=self.critic_init_scale,
            value_init_scale=self.value_init_scale,
            actor_input_scale=self.actor_input_scale,
        )
        return data

    def save(self, path: str) -> None:
        """Save the policy alone (SB3's ``policy.save``), with the save format's number."""
        data = self._get_constructor_parameters()
        torch.save({"state_dict": self.state_dict(), "data": data, "save_format": SAVE_FORMAT}, path)

    @classmethod
    def load(cls, path: str, device: torch.device | str = "auto") -> RtxActorCriticPolicy:  # type: ignore[override]
        """Load a policy saved by :meth:`save` (SB3's ``Policy.load``), converting an older save format."""
        device = get_device(device)
        # (not weights_only: the constructor's parameters hold gymnasium spaces, as in SB3)
        saved = torch.load(path, map_location=device, weights_only=False)
        data = convert_policy_kwargs(saved["data"], saved.get("save_format"))
        policy = cls(**data)
        policy.load_state_dict(saved["state_dict"])
        return policy.to(device)

    def resolved_cell_kwargs(self) -> dict[str, Any]:
        """The cell keywords as built, with the cell's variant and every choice it resolved made
        explicit (what a saved model records, so that a later change of the library's defaults, or
        of what a variant means, does not change what a saved model computes)."""
        return {**self.cell_kwargs, **self.cell_actor.recorded_choices()}

    @property
    def cells(self) -> tuple[RecurrentCell, ...]:
        """The actor's cell, then the critic's if it has its own."""
        return (self.cell_actor,) if self.cell_critic is None else (self.cell_actor, self.cell_critic)

    @property
    def state_numel(self) -> int:
        """Floats of recurrent state per env (all cells)."""
        return sum(cell.state_numel for cell in self.cells)

    @torch.no_grad()
    def update_input_statistics(self, obs: PyTorchObs) -> None:
        """Merge a batch of observations (``(N, *obs_shape)``, or a dict of them) into the running input
        statistics of the cells that keep them (``memory_input="standardised"`` or ``"scaled"``); nothing otherwise.
        RtxPPO calls it once per rollout, after the update (see :mod:`sb3_rtx.cells.input_statistics`)."""
        if not any(cell.has_input_statistics for cell in self.cells):
            return
        check_finite_observation(obs)
        features = self.extract_features(obs)
        if self.share_features_extractor:
            pi_features = vf_features = cast(torch.Tensor, features)
        else:
            pi_features, vf_features = cast(tuple[torch.Tensor, torch.Tensor], features)
        self.cell_actor.update_input_statistics(pi_features)
        if self.cell_critic is not None:
            self.cell_critic.update_input_statistics(vf_features)

    def initial_state(self, n_envs: int) -> CellState:
        """The recurrent state of ``n_envs`` fresh envs: actor cell's tensors, then the critic's."""
        return tuple(t for cell in self.cells for t in cell.initial_state(n_envs, self.device))

    def _split_state(self, state: CellState) -> tuple[CellState, CellState | None]:
        n_actor = len(self.cell_actor.state_shapes())
        expected = n_actor + (0 if self.cell_critic is None else len(self.cell_critic.state_shapes()))
        if len(state) != expected:
            raise ValueError(
                f"state has {len(state)} arrays, this policy's state has {expected} "
                f"(cell {self.cell_name!r}, shared_cell={self.shared_cell}): is it a state from another model?"
            )
        if self.cell_critic is None:
            return tuple(state), None
        return tuple(state[:n_actor]), tuple(state[n_actor:])

    # ------------------------------------------------------------------ running
    def _run_cell(
        self, cell: RecurrentCell, features: torch.Tensor, state: CellState, episode_starts: torch.Tensor
    ) -> tuple[torch.Tensor, CellState]:
        """Flat time-major features ``(T * B, d)`` -> flat latent ``(T * B, d_out)`` and the new state."""
        n_envs = state[0].shape[0]
        if features.shape[0] % n_envs:
            raise ValueError(
                f"{features.shape[0]} observations cannot be split into sequences of {n_envs} envs "
                f"(the state is for {n_envs} envs)"
            )
        seq_len = features.shape[0] // n_envs
        starts = episode_starts.reshape(-1)
        if starts.shape[0] != seq_len * n_envs:
            raise ValueError(f"episode_start has {starts.shape[0]} entries, expected one per observation ({seq_len * n_envs})")
        latent, new_state = cell(features.reshape(seq_len, n_envs, -1), state, starts.reshape(seq_len, n_envs))
        return latent.reshape(seq_len * n_envs, -1), new_state

    def _latents(
        self, obs: PyTorchObs, state: CellState, episode_starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, CellState]:
        check_finite_observation(obs)
        actor_state, critic_state = self._split_state(state)
        features = self.extract_features(obs)
        if self.share_features_extractor:
            pi_features = vf_features = cast(torch.Tensor, features)
        else:
            pi_features, vf_features = cast(tuple[torch.Tensor, torch.Tensor], features)
        latent_pi, new_actor = self._run_cell(self.cell_actor, pi_features, actor_state, episode_starts)
        if self.cell_critic is None:
            return latent_pi, latent_pi, new_actor
        assert critic_state is not None  # _split_state gives one whenever there is a critic cell
        latent_vf, new_critic = self._run_cell(self.cell_critic, vf_features, critic_state, episode_starts)
        return latent_pi, latent_vf, new_actor + new_critic

    def latent_actor(self, latent_pi: torch.Tensor) -> torch.Tensor:
        """The actor head's hidden layers on the actor cell's output (times ``actor_input_scale``): what
        the action distribution is made from, in every path that acts or trains (the exports too)."""
        if self.actor_input_scale != 1.0:  # (skipped at 1: a scale of 1 computes what it always has)
            latent_pi = latent_pi * cast(float, self.actor_input_scale)
        return self.mlp_extractor.forward_actor(latent_pi)

    def forward(  # type: ignore[override]  # takes and returns the state, as sb3-contrib's recurrent policies
        self, obs: PyTorchObs, state: CellState, episode_starts: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, CellState]:
        """One acting step (or a sequence): actions, values, log-probabilities and the new state."""
        latent_pi, latent_vf, new_state = self._latents(obs, state, episode_starts)
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        distribution = self._get_action_dist_from_latent(self.latent_actor(latent_pi))
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        return actions, values, log_prob, new_state

    def evaluate_actions(  # type: ignore[override]
        self, obs: PyTorchObs, actions: torch.Tensor, state: CellState, episode_starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Values, log-likelihoods and entropy for whole sequences (time-major, flat ``T * B``)."""
        latent_pi, latent_vf, _ = self._latents(obs, state, episode_starts)
        distribution = self._get_action_dist_from_latent(self.latent_actor(latent_pi))
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        return values, distribution.log_prob(actions), distribution.entropy()

    def evaluate_actions_split(
        self, obs: PyTorchObs, actions: torch.Tensor, state: CellState, episode_starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`evaluate_actions` with the log-likelihoods twice, equal in value but not in where
        their gradient goes: values, ``log_prob_head`` (into the actor's head only: its ``pi`` layers,
        the action output, ``log_std``), ``log_prob_cell`` (into what the head reads only: the cell and
        the features extractor) and the entropy, whose gradient goes into both as usual. RtxPPO's
        ``cell_gae_lambda`` weighs each by its own advantages."""
        latent_pi, latent_vf, _ = self._latents(obs, state, episode_starts)
        values = self.value_net(self.mlp_extractor.forward_critic(latent_vf))
        head = _ActionTerms(self)
        log_prob_head, entropy_head = head(latent_pi.detach(), actions)
        head_ids = self._actor_head_ids()
        detached = {f"policy.{name}": p.detach() for name, p in self.named_parameters() if id(p) in head_ids}
        log_prob_cell, entropy_cell = functional_call(head, detached, (latent_pi, actions))
        if entropy_head is None:
            return values, log_prob_head, log_prob_cell, None
        # the value of one, the gradient of both: the full entropy gradient, as evaluate_actions gives it
        return values, log_prob_head, log_prob_cell, entropy_head + entropy_cell - entropy_head.detach()

    def _actor_head_ids(self) -> set[int]:
        """The ids of the actor head's parameters: between the cell's output and the actions."""
        head = [*self.mlp_extractor.policy_net.parameters(), *self.action_net.parameters()]
        if isinstance(getattr(self, "log_std", None), nn.Parameter):
            head.append(self.log_std)
        return {id(parameter) for parameter in head}

    def get_distribution(  # type: ignore[override]
        self, obs: PyTorchObs, state: CellState, episode_starts: torch.Tensor
    ) -> tuple[Distribution, CellState]:
        latent_pi, _, new_state = self._latents(obs, state, episode_starts)
        return self._get_action_dist_from_latent(self.latent_actor(latent_pi)), new_state

    def predict_values(  # type: ignore[override]
        self, obs: PyTorchObs, state: CellState, episode_starts: torch.Tensor
    ) -> torch.Tensor:
        _, latent_vf, _ = self._latents(obs, state, episode_starts)
        return self.value_net(self.mlp_extractor.forward_critic(latent_vf))

    def _predict(  # type: ignore[override]
        self, observation: PyTorchObs, state: CellState, episode_starts: torch.Tensor, deterministic: bool = False
    ) -> tuple[torch.Tensor, CellState]:
        distribution, new_state = self.get_distribution(observation, state, episode_starts)
        return distribution.get_actions(deterministic=deterministic), new_state

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: NumpyState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, NumpyState]:
        """Actions for a batch of observations, carrying the recurrent state (RecurrentPPO's interface).

        :param observation: observations of ``n_envs`` envs (or a single one)
        :param state: the state returned by the previous call; ``None`` means every env starts fresh
        :param episode_start: ``(n_envs,)`` bools: envs whose episode starts at this observation
        :param deterministic: greedy instead of sampled actions
        :return: ``(actions, state)``
        """
        self.set_training_mode(False)
        obs_tensor, vectorized_env = self.obs_to_tensor(observation)
        first = next(iter(obs_tensor.values())) if isinstance(obs_tensor, dict) else obs_tensor
        n_envs = first.shape[0]
        if episode_start is None:
            episode_start = np.zeros(n_envs, dtype=bool)
        episode_start = np.asarray(episode_start)
        if episode_start.size != n_envs:
            raise ValueError(f"episode_start has shape {episode_start.shape}, expected ({n_envs},): one flag per env")
        with torch.no_grad():
            if state is None:
                state_t = self.initial_state(n_envs)
            else:
                if not isinstance(state, (tuple, list)):
                    raise TypeError(f"state must be the tuple returned by predict, got {type(state).__name__}")
                dtype = next(self.parameters()).dtype
                state_t = tuple(torch.as_tensor(np.asarray(s), dtype=dtype, device=self.device) for s in state)
                if state_t and state_t[0].shape[0] != n_envs:
                    raise ValueError(
                        f"state is for {state_t[0].shape[0]} envs but {n_envs} observations were given: "
                        "pass state=None to start fresh envs"
                    )
            starts = torch.as_tensor(episode_start.reshape(n_envs), dtype=torch.float32, device=self.device)
            actions, new_state = self._predict(obs_tensor, state_t, starts, deterministic=deterministic)
            numpy_state = tuple(s.cpu().numpy() for s in new_state)
        action_shape = self.action_space.shape or ()
        numpy_actions = actions.cpu().numpy().reshape((-1, *action_shape))
        if isinstance(self.action_space, spaces.Box):
            if self.squash_output:
                numpy_actions = self.unscale_action(numpy_actions)
            else:
                numpy_actions = np.clip(numpy_actions, self.action_space.low, self.action_space.high)
        if not vectorized_env:
            numpy_actions = numpy_actions.squeeze(axis=0)
        return numpy_actions, numpy_state


class RtxActorCriticCnnPolicy(RtxActorCriticPolicy):
    """:class:`RtxActorCriticPolicy` with SB3's NatureCNN features extractor (image observations)."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = NatureCNN, **kwargs: Any):
        # (args are the positional ones before features_extractor_class: observation/action space, lr schedule)
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)  # type: ignore[misc]


class RtxMultiInputActorCriticPolicy(RtxActorCriticPolicy):
    """:class:`RtxActorCriticPolicy` with SB3's CombinedExtractor (dict observations)."""

    def __init__(self, *args: Any, features_extractor_class: type[BaseFeaturesExtractor] = CombinedExtractor, **kwargs: Any):
        # (args are the positional ones before features_extractor_class: observation/action space, lr schedule)
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)  # type: ignore[misc]


MlpRtxPolicy = RtxActorCriticPolicy
CnnRtxPolicy = RtxActorCriticCnnPolicy
MultiInputRtxPolicy = RtxMultiInputActorCriticPolicy
