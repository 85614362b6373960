"""RtxPPO: sb3-contrib's RecurrentPPO algorithm on a recurrent transformer policy, trained sequence-wise.

What differs from ``RecurrentPPO`` (its constructor's arguments, plus ``sequence_length``,
``state_dtype``, ``advantage_scale_horizon`` and ``cell_gae_lambda``; ``normalize_advantage`` takes
``"running"`` too, and defaults to it; ``gae_lambda`` defaults to 0.8):

* the rollout buffer stores the cell state only at the start of each ``sequence_length``-step
  sequence (:mod:`sb3_rtx.buffers`), not at every step;
* training replays whole sequences through the cell's multi-step form with the episode-start
  mask, never looping over time steps in Python (RecurrentPPO steps its LSTM one step at a time
  whenever a minibatch holds an episode start);
* sequences are never padded, so no loss mask is needed;
* advantages are centred and divided by their running scale (:mod:`sb3_rtx.advantages`), not by
  each minibatch's standard deviation;
* GAE's lambda defaults to 0.8, not 0.95 (see :class:`RtxPPO`); ``cell_gae_lambda`` gives the
  actor's gradient into the memory a lambda of its own;
* saved models record their save format and every choice of their cell (:mod:`sb3_rtx.saved_format`).
"""

from __future__ import annotations

import math
import warnings
from numbers import Real
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib import RecurrentPPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import FloatSchedule, explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_rtx.advantages import RunningAdvantageScale, check_normalize_advantage, scale_advantages
from sb3_rtx.buffers import RtxDictRolloutBuffer, RtxRolloutBuffer, RtxRolloutBufferSamples
from sb3_rtx.cells import CellState
from sb3_rtx.cells.base import check_positive_int
from sb3_rtx.saved_format import SAVE_FORMAT, convert_policy_kwargs
from sb3_rtx.policies import CnnRtxPolicy, MlpRtxPolicy, MultiInputRtxPolicy, RtxActorCriticPolicy

SelfRtxPPO = TypeVar("SelfRtxPPO", bound="RtxPPO")


def _select_env(state: CellState, index: int) -> CellState:
    return tuple(s[index : index + 1] for s in state)


#: rollout-buffer precisions for cell states. No float16: a state's running sums can leave its range
STATE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def default_sequence_length(n_steps: int, batch_size: int | None) -> int:
    """The ``sequence_length`` used when none is given: the longest that fits, i.e. the greatest
    common divisor of ``n_steps`` and ``batch_size`` (``n_steps`` itself when ``batch_size`` is None
    or a multiple of it). So ``RtxPPO(..., n_steps=256)`` with the default ``batch_size=128``
    trains on 128-step sequences instead of failing, as RecurrentPPO users would expect."""

    def positive_int(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and bool(value >= 1)

    if batch_size is None or not (positive_int(n_steps) and positive_int(batch_size)):
        return n_steps  # batch_size None (whole rollouts), or a bad value that check_rollout_sizes names
    return math.gcd(int(n_steps), int(batch_size))


def check_finite_rewards(rewards: np.ndarray, num_timesteps: int) -> None:
    """Raise a clear error for a NaN or infinite reward, before it reaches the rollout buffer.

    Stored, it would turn the returns, then the value loss, then the parameters into NaN, and
    training would fail updates later with a torch distribution-constraint message."""
    bad = np.flatnonzero(~np.isfinite(rewards))
    if bad.size:
        env_index = int(bad[0])
        raise ValueError(
            f"RtxPPO: env {env_index} returned a non-finite reward ({float(rewards[env_index])}) at timestep "
            f"{num_timesteps} (envs {bad.tolist()} in this step). Fix the env's reward, or clip it "
            "(e.g. gymnasium.wrappers.ClipReward); wrap the env in SB3's VecCheckNan to find where it appears."
        )


def check_finite_update(loss: torch.Tensor, grad_norm: float, parts: dict[str, float], n_updates: int) -> None:
    """Raise before the optimizer step when the loss or its gradient is NaN or infinite, naming the
    loss terms, so a bad update never reaches the parameters."""
    if math.isfinite(grad_norm) and bool(torch.isfinite(loss)):
        return
    terms = ", ".join(f"{name} {value:.4g}" for name, value in parts.items())
    raise FloatingPointError(
        f"RtxPPO: non-finite {'loss' if not bool(torch.isfinite(loss)) else 'gradient'} at update "
        f"{n_updates} ({terms}, gradient norm {grad_norm:.4g}); the parameters were not changed. "
        "Look for NaN/inf in observations or rewards (SB3's VecCheckNan), unnormalised large "
        "observations or returns (VecNormalize), or a learning rate too high."
    )


def check_discounts(**values: Any) -> None:
    """Raise a clear error for a ``gamma``, ``gae_lambda`` or ``cell_gae_lambda`` (None allowed)
    outside [0, 1]: SB3 accepts any float, and GAE then diverges silently."""
    for name, value in values.items():
        if name == "cell_gae_lambda" and value is None:
            continue
        # numbers.Real: numpy's floats and ints too, as SB3 takes them
        if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
            allowed = "in [0, 1]" + (" or None" if name == "cell_gae_lambda" else "")
            raise ValueError(f"RtxPPO: {name} must be {allowed}, got {value!r}")


def check_rollout_sizes(n_steps: int, n_envs: int, batch_size: int | None, sequence_length: int, n_epochs: int = 1) -> int:
    """Check how a rollout is cut into sequences and minibatches; return the effective ``batch_size``.

    ``sequence_length`` must divide ``n_steps`` and ``batch_size`` (default: the whole rollout)
    must be a multiple of ``sequence_length``. The zoo calls this on a yml entry before it builds
    any environment, so a bad file fails at once.
    """
    check_positive_int("RtxPPO", n_steps=n_steps, sequence_length=sequence_length, n_epochs=n_epochs)
    if n_steps % sequence_length:
        raise ValueError(
            f"RtxPPO: sequence_length={sequence_length} must divide n_steps={n_steps} "
            "(every rollout is cut into whole sequences)"
        )
    if batch_size is None:
        batch_size = n_steps * n_envs
    check_positive_int("RtxPPO", batch_size=batch_size)
    if batch_size % sequence_length:
        raise ValueError(
            f"RtxPPO: batch_size={batch_size} must be a multiple of sequence_length={sequence_length} "
            "(minibatches are made of whole sequences)"
        )
    if batch_size > n_steps * n_envs:
        # a warning, not an error (as in SB3's PPO): loading a model with fewer envs, as
        # rl_zoo3's record_video does, must work; a minibatch is then the whole rollout
        warnings.warn(
            f"RtxPPO: batch_size={batch_size} is larger than a rollout (n_steps * n_envs = "
            f"{n_steps * n_envs}); each minibatch will be the whole rollout",
            stacklevel=3,
        )
    return int(batch_size)


class RtxPPO(RecurrentPPO):
    """Proximal Policy Optimisation with a recurrent transformer policy (RecurrentPPO's interface).

    Takes every argument of ``sb3_contrib.RecurrentPPO`` plus:

    :param sequence_length: truncated-BPTT length: steps per training sequence. Must divide
        ``n_steps``; ``batch_size`` must be a multiple of it. Defaults to the longest that fits,
        ``gcd(n_steps, batch_size)`` (:func:`default_sequence_length`): whole rollouts when
        ``batch_size`` is a multiple of ``n_steps``.
    :param state_dtype: precision of the cell states kept in the rollout buffer (one per env and
        sequence): ``"float32"`` (default) or ``"bfloat16"``, half the bytes, with float32's range;
        training reads them back as float32. Acting always carries the full-precision state.

    :param normalize_advantage: ``"running"`` (default): each minibatch centred, then divided by the
        task's running advantage scale; ``True``: SB3's and RecurrentPPO's default, divided by the
        minibatch's own standard deviation; ``False``: raw (:mod:`sb3_rtx.advantages`).
    :param advantage_scale_horizon: with ``"running"``, rollouts after which the scale becomes an
        exponential average that forgets older ones; ``None`` (default): the mean over every
        rollout so far (docs, "RtxPPO": why the default does not forget).
    :param cell_gae_lambda: GAE's lambda of the credit the actor's gradient carries into what its
        head reads (the cell and the features extractor); the head and the critic keep
        ``gae_lambda``. ``None`` (default): ``gae_lambda`` everywhere, as in PPO. ``0.0`` keeps a
        faint cue that many unscored actions separate from its answer: GAE's long credit for those
        actions is noise with zero mean in the memory's gradient, which washes the cue out, while
        the head still learns from the long credit (docs, "Learning memory"). The cell's
        advantages are centred and scaled as the head's (with ``"running"``, by the running scale
        of the advantages at ``gae_lambda``: one scale for both). Costs one more pass of the actor's
        head per minibatch.

    The default of ``normalize_advantage`` differs from RecurrentPPO's. Before a sparse-reward task
    has paid anything but its constant step cost, the advantages hold only the critic's residual
    error, which shrinks as the critic fits; divided by their own standard deviation, that noise
    drives full-size policy steps, and on T-Maze the policy drifted away from the reward before
    finding it. Divided by the running scale, the steps shrink with the noise (docs, "Learning
    memory"; the statistic's rules: :class:`~sb3_rtx.advantages.RunningAdvantageScale`).

    So does ``gae_lambda`` (0.8; RecurrentPPO's and PPO's is 0.95). On a memory task most actions
    before the one that is scored change nothing, yet GAE hands each of them the scored step's
    surprise, discounted by ``(gamma * lambda)`` per step back: noise with zero mean in every action's
    gradient, and a memory cell carries it back to what it wrote. At 0.95 and 8 steps back that is
    still 0.61 of the surprise; at 0.8, 0.16. The critic's bootstrap carries the rest of the
    credit (docs, "Learning memory": measured on the development tasks).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpRtxPolicy": MlpRtxPolicy,
        "CnnRtxPolicy": CnnRtxPolicy,
        "MultiInputRtxPolicy": MultiInputRtxPolicy,
    }
    policy: RtxActorCriticPolicy
    rollout_buffer: RtxRolloutBuffer | RtxDictRolloutBuffer

    def __init__(
        self,
        policy: str | type[RtxActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        batch_size: int | None = 128,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.8,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool | str = "running",
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        sequence_length: int | None = None,
        state_dtype: str = "float32",
        advantage_scale_horizon: int | None = None,
        cell_gae_lambda: float | None = None,
        _init_setup_model: bool = True,
    ):
        self.sequence_length = default_sequence_length(n_steps, batch_size) if sequence_length is None else sequence_length
        if state_dtype not in STATE_DTYPES:
            raise ValueError(f"RtxPPO: state_dtype must be one of {sorted(STATE_DTYPES)}, got {state_dtype!r}")
        self.state_dtype = state_dtype
        normalize_advantage = check_normalize_advantage(normalize_advantage)
        # SB3's load builds the model with _init_setup_model=False, then sets what the file saved:
        # a file without a format number keeps None here, format 1 (see saved_format.py)
        self.save_format: int | None = SAVE_FORMAT if _init_setup_model else None
        self.advantage_scale = RunningAdvantageScale(advantage_scale_horizon)
        self.advantage_scale_horizon = self.advantage_scale.horizon
        self.cell_gae_lambda = cell_gae_lambda
        self._last_cell_states: CellState | None = None
        super().__init__(
            policy,  # type: ignore[arg-type]  # an Rtx policy, not an LSTM one: RecurrentPPO is reused for its API
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,  # type: ignore[arg-type]  # "running" is RtxPPO's (train)
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ set-up
    def _get_policy_from_name(self, policy_name: str) -> type[BasePolicy]:
        """SB3's look-up, with an error that names RtxPPO's policies (a RecurrentPPO script that only
        changed the class name passes ``"MlpLstmPolicy"``)."""
        if policy_name not in self.policy_aliases:
            hint = ""
            if "Lstm" in policy_name:
                hint = f" (for an LSTM, {policy_name.replace('Lstm', 'Rtx')!r} with policy_kwargs=dict(cell='lstm'))"
            raise ValueError(
                f"RtxPPO: policy {policy_name!r} unknown; RtxPPO's policies are {', '.join(self.policy_aliases)}{hint}"
            )
        return self.policy_aliases[policy_name]

    def _check_hyperparameters(self) -> None:
        check_discounts(gamma=self.gamma, gae_lambda=self.gae_lambda, cell_gae_lambda=self.cell_gae_lambda)
        self.batch_size = check_rollout_sizes(self.n_steps, self.n_envs, self.batch_size, self.sequence_length, self.n_epochs)

    def _setup_model(self) -> None:
        self._check_hyperparameters()
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        if self.save_format != SAVE_FORMAT:  # a loaded model saved in an older format
            self.policy_kwargs = convert_policy_kwargs(self.policy_kwargs, self.save_format)
            self.save_format = SAVE_FORMAT
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, use_sde=self.use_sde, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        if not isinstance(self.policy, RtxActorCriticPolicy):
            raise ValueError("RtxPPO needs a policy that subclasses RtxActorCriticPolicy (e.g. 'MlpRtxPolicy')")
        # save the cell keywords as built (the default size, the variant) and the actor's input scale as
        # resolved: a saved model must not change when a later version changes the library's defaults
        self.policy_kwargs = {
            **self.policy_kwargs,
            "cell": self.policy.cell_name,
            "cell_kwargs": self.policy.resolved_cell_kwargs(),
            "actor_input_scale": self.policy.actor_input_scale,
        }
        self._last_cell_states = self.policy.initial_state(self.n_envs)
        buffer_cls = RtxDictRolloutBuffer if isinstance(self.observation_space, spaces.Dict) else RtxRolloutBuffer
        self.rollout_buffer = buffer_cls(
            self.n_steps,
            self.observation_space,  # type: ignore[arg-type]
            self.action_space,
            sequence_length=self.sequence_length,
            state_shapes=tuple(shape for cell in self.policy.cells for shape in cell.state_shapes()),
            device=self.device,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            n_envs=self.n_envs,
            state_dtype=STATE_DTYPES[self.state_dtype],
            cell_gae_lambda=self.cell_gae_lambda,
        )
        self.clip_range = FloatSchedule(self.clip_range)
        if self.clip_range_vf is not None:
            if isinstance(self.clip_range_vf, (float, int)) and self.clip_range_vf <= 0:
                raise ValueError("clip_range_vf must be positive, pass None to deactivate value clipping")
            self.clip_range_vf = FloatSchedule(self.clip_range_vf)

    def set_env(self, env: GymEnv, force_reset: bool = True) -> None:
        super().set_env(env, force_reset=force_reset)
        if force_reset and self.policy is not None:
            self._last_cell_states = self.policy.initial_state(self.n_envs)

    # ----------------------------------------------------------------- rollout
    def collect_rollouts(  # type: ignore[override]
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RtxRolloutBuffer | RtxDictRolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        if self._last_cell_states is None or self._last_cell_states[0].shape[0] != env.num_envs:
            self._last_cell_states = self.policy.initial_state(env.num_envs)
        cell_states = self._last_cell_states

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with torch.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                episode_starts = torch.as_tensor(self._last_episode_starts, dtype=torch.float32, device=self.device)
                actions, values, log_probs, cell_states = self.policy(obs_tensor, self._last_cell_states, episode_starts)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)

            new_obs, rewards, dones, infos = env.step(clipped_actions)
            check_finite_rewards(rewards, self.num_timesteps)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)

            # bootstrap truncated episodes from the value of their final observation
            for idx, done in enumerate(dones):
                if (
                    done
                    and infos[idx].get("terminal_observation") is not None
                    and infos[idx].get("TimeLimit.truncated", False)
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with torch.no_grad():
                        no_start = torch.zeros(1, dtype=torch.float32, device=self.device)
                        terminal_value = self.policy.predict_values(terminal_obs, _select_env(cell_states, idx), no_start)[0]
                    rewards[idx] += self.gamma * terminal_value

            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
                cell_state=self._last_cell_states,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
            self._last_cell_states = cell_states

        with torch.no_grad():
            episode_starts = torch.as_tensor(dones, dtype=torch.float32, device=self.device)
            values = self.policy.predict_values(obs_as_tensor(new_obs, self.device), cell_states, episode_starts)  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    # ---------------------------------------------------------------- training
    def _policy_loss(
        self, rollout_data: RtxRolloutBufferSamples, log_prob: torch.Tensor, running_scale: float, clip_range: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """PPO's clipped surrogate loss on one minibatch, and the probability ratio it clipped."""
        advantages = scale_advantages(rollout_data.advantages, self.normalize_advantage, running_scale)
        ratio = torch.exp(log_prob - rollout_data.old_log_prob)
        policy_loss_1 = advantages * ratio
        policy_loss_2 = advantages * torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
        return -torch.min(policy_loss_1, policy_loss_2).mean(), ratio

    def _evaluate_minibatch(
        self, rollout_data: RtxRolloutBufferSamples, actions: torch.Tensor, running_scale: float, clip_range: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[torch.Tensor], torch.Tensor]:
        """Values, log-likelihoods, entropy, the policy loss's terms (one; with ``cell_gae_lambda`` the
        head's, then the cell's) and the probability ratio for one minibatch."""
        inputs = (rollout_data.observations, actions, rollout_data.cell_states, rollout_data.episode_starts)
        if self.cell_gae_lambda is None:
            values, log_prob, entropy = self.policy.evaluate_actions(*inputs)
            policy_loss, ratio = self._policy_loss(rollout_data, log_prob, running_scale, clip_range)
            return values, log_prob, entropy, [policy_loss], ratio
        # the head learns from the advantages at gae_lambda, the cell from those at cell_gae_lambda: two
        # clipped surrogates with the same ratio, each sending its gradient one way
        if rollout_data.cell_advantages is None:
            raise ValueError(
                f"RtxPPO: cell_gae_lambda={self.cell_gae_lambda} but the rollout buffer keeps no advantages at it: "
                "pass cell_gae_lambda when building the model or to RtxPPO.load, not by setting the attribute"
            )
        values, log_prob, log_prob_cell, entropy = self.policy.evaluate_actions_split(*inputs)
        if entropy is None:  # no closed form (train's estimate -mean(log_prob)): its gradient into both parts
            entropy = -(log_prob + log_prob_cell - log_prob.detach())
        head_loss, ratio = self._policy_loss(rollout_data, log_prob, running_scale, clip_range)
        for_cell = rollout_data._replace(advantages=rollout_data.cell_advantages)
        cell_loss, _ = self._policy_loss(for_cell, log_prob_cell, running_scale, clip_range)
        return values, log_prob, entropy, [head_loss, cell_loss], ratio

    def train(self) -> None:
        """One PPO update over the rollout, minibatch by minibatch of whole sequences."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = None
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        if self.normalize_advantage == "running":
            self.advantage_scale.update(self.rollout_buffer.advantages)
        running_scale = self.advantage_scale.scale
        entropy_losses, pg_losses, value_losses, clip_fractions = [], [], [], []
        cell_pg_losses: list[float] = []
        grad_norms: list[float] = []
        approx_kl_divs: list[float] = []
        continue_training = True
        loss = torch.zeros(())
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = actions.long().flatten()
                values, log_prob, entropy, policy_losses, ratio = self._evaluate_minibatch(
                    rollout_data, actions, running_scale, clip_range
                )
                values = values.flatten()
                policy_loss = torch.stack(policy_losses).sum()
                pg_losses.append(policy_losses[0].item())
                if len(policy_losses) > 1:
                    cell_pg_losses.append(policy_losses[1].item())
                clip_fractions.append(torch.mean((torch.abs(ratio - 1) > clip_range).float()).item())

                if clip_range_vf is None:
                    values_pred = values
                else:
                    values_pred = rollout_data.old_values + torch.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = torch.mean((rollout_data.returns - values_pred) ** 2)
                value_losses.append(value_loss.item())
                entropy_loss = -torch.mean(-log_prob) if entropy is None else -torch.mean(entropy)
                entropy_losses.append(entropy_loss.item())
                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss

                with torch.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = torch.mean((torch.exp(log_ratio) - 1) - log_ratio).item()
                    approx_kl_divs.append(approx_kl_div)
                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                self.policy.optimizer.zero_grad()
                loss.backward()
                # the norm before clipping: when it sits far above max_grad_norm, clipping shrinks every
                # update and learning stalls (what exploding memory gradients look like from outside)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm))
                parts = dict(policy_loss=policy_loss.item(), value_loss=value_losses[-1], entropy_loss=entropy_losses[-1])
                check_finite_update(loss, grad_norm, parts, self._n_updates)
                grad_norms.append(grad_norm)
                self.policy.optimizer.step()
            self._n_updates += 1
            if not continue_training:
                break

        # after the update, so that each rollout is collected and trained with the same statistics
        self.policy.update_input_statistics(self.rollout_buffer.all_observations())
        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        self._record_optional_logs(cell_pg_losses, grad_norms, running_scale, clip_range_vf)

    def _record_optional_logs(
        self, cell_pg_losses: list[float], grad_norms: list[float], running_scale: float, clip_range_vf: float | None
    ) -> None:
        """The update's logs that only some settings have."""
        if cell_pg_losses:
            self.logger.record("train/cell_policy_gradient_loss", np.mean(cell_pg_losses))
        if grad_norms:
            self.logger.record("train/grad_norm", float(np.mean(grad_norms)))
            self.logger.record("train/grad_norm_max", float(np.max(grad_norms)))
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())
        if self.normalize_advantage == "running":
            self.logger.record("train/advantage_scale", running_scale)
        if clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)

    def learn(  # type: ignore[override]
        self: SelfRtxPPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "RtxPPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRtxPPO:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_last_cell_states"]
