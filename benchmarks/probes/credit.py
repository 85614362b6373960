"""Probe edits of the actor's credit: tree-backup traces, and the cell's share of it apart.

With GAE at lambda each step's advantage is ``delta_t + gamma lambda A_t+1``: it carries a share of
every later surprise, including the part of a later step's surprise that the later step's own action
caused (an answer sampled at random, right or wrong). Tree backup (Precup, Sutton and Singh 2000)
weighs what it carries back from a step by the probability of the action taken there,

    A_t = delta_t + gamma lambda pi(a_t+1 | s_t+1) A_t+1,

so the surprise of a step whose action was a long shot (one answer of 24, at the start) mostly stays
with that step, while the surprise after an action the policy takes almost surely (a step down a
corridor it has learned to walk) travels back as GAE's does. The critic keeps GAE's lambda-returns
(SB3's, from the same rollout). Edited into a built RtxPPO agent's rollout buffer; not an option of
the library. :func:`split_actor_credit` gives the actor's gradient into the cell advantages at another
lambda than the gradient into the actor's own head, with the rest of GAE's credit for the cell edited
(flipped, clipped or weighed step by step, :data:`RestEdit`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.probes.reward_prediction import REWARD_PREDICTION_VARIANTS

#: the probes' variant whose actor's advantages are tree backup's (:func:`tree_backup_advantages`)
TREE_BACKUP = "AGaLiTe (tree-backup advantages)"
#: the probes' variants whose actor's gradient into the cell comes from advantages at another lambda
#: (:func:`split_actor_credit`): variant -> that lambda
CELL_LAMBDAS = {
    "AGaLiTe (cell credit at lambda 0)": 0.0,
    "AGaLiTe (cell credit at lambda 0.5)": 0.5,
    "LSTM (cell credit at lambda 0)": 0.0,
}
#: the probes' variant whose actor's gradient into the cell comes from tree-backup advantages at the
#: agent's lambda, its gradient into the head from GAE's (:func:`split_actor_credit` with ``tree_backup``)
CELL_TREE_BACKUP = "AGaLiTe (cell credit by tree backup)"
#: the probes' variant whose cell's credit is that at lambda 0 plus the rest of GAE's with a random sign
#: per episode (:func:`split_actor_credit` with :func:`random_signs_per_episode`)
CELL_RANDOM_REST = "AGaLiTe (cell credit: lambda 0, the rest by random signs)"
#: the probes' variant whose cell's credit is that at lambda 0 plus the rest of GAE's, each step's
#: clipped to the spread of a dueling critic's action values there (:func:`split_actor_credit` with
#: :func:`clipped_to`; the actor's head and the critic's targets keep GAE's)
CELL_ACTION_BOUND = "AGaLiTe (cell credit: lambda 0, the rest bounded by action values)"
#: the probes' variant whose cell's credit is that at lambda 0 plus the rest of GAE's times each step's
#: share of its action that the next observation shows, by an inverse model
#: (:func:`~benchmarks.probes.inverse_dynamics.action_shown_weights`; :func:`split_actor_credit` with
#: :func:`weighted_by`)
CELL_ACTION_SHOWN = "AGaLiTe (cell credit: lambda 0, the rest as the action shows)"
#: the same with each step's weight the expected share at that step, a function of its observation only
#: (``per_state``), the same for every action
CELL_STEP_SHOWN = "AGaLiTe (cell credit: lambda 0, the rest as the step's actions show)"
#: the probes' variant whose cell's credit is that at lambda 0 plus a fixed share of the rest of GAE's,
#: the same at every step (:func:`split_actor_credit` with that share of the rest): variant -> share
CELL_REST_SHARES = {"AGaLiTe (cell credit: lambda 0, three quarters of the rest)": 0.75}
#: the probes' variant whose memory's input projections (AGaLiTe's keys, queries, values and gates, and the
#: value convolution) learn from the actor's advantages at lambda 0, and every other parameter (the
#: embedding, the read's output, the block's MLP and gate, the heads) from GAE's
#: (:func:`split_parameter_credit`): the current step's features keep the long credit control needs
MEMORY_PROJECTIONS_LAMBDA_0 = "AGaLiTe (memory projections' credit at lambda 0)"
#: the same split with no actor's credit on the memory's side: its input projections learn from the
#: critic (and the entropy) alone, every other parameter from all of PPO's loss. With the whole actor's
#: gradient stopped the cue became readable at T-Maze's junction sooner and the actor did not use it:
#: does the memory learn the cue faster from the critic alone while the actor still shapes the rest?
MEMORY_PROJECTIONS_NO_ACTOR = "AGaLiTe (memory projections: no actor credit)"
#: the same split by rows of the memory's parameters (:func:`memory_rows`): only every head's value
#: path (its value rows of the fused projection, the value convolution and its direct path), or only
#: the first head's whole input path (the head that starts long, ``gate_init="long_first"``), learns
#: from the advantages at lambda 0; every other row and parameter from GAE's
VALUE_PATH_LAMBDA_0 = "AGaLiTe (value path's credit at lambda 0)"
LONG_HEAD_LAMBDA_0 = "AGaLiTe (long head's credit at lambda 0)"
#: label -> which rows :func:`memory_rows` puts on the lambda 0 side
MEMORY_ROWS_LAMBDA_0 = {VALUE_PATH_LAMBDA_0: "values", LONG_HEAD_LAMBDA_0: "long head"}
#: the values' two ways into the block apart (:func:`split_value_routes`): their gradient through the
#: memory from the advantages at lambda 0, through the direct path (the convolved values added to the
#: read) and every other parameter's from GAE's
VALUES_INTO_MEMORY_LAMBDA_0 = "AGaLiTe (values into the memory at lambda 0)"
#: T-Maze diagnostics: the cell's credit at lambda 0 plus the rest of GAE's for the steps that took
#: these actions only (T-Maze's: 0 forward, 1 back, 2 up, 3 down; :func:`split_actor_credit` with
#: :func:`weighted_by` 1 for them, 0 for the others): which corridor steps' share teaches the memory?
CELL_REST_FOR_ACTIONS = {
    "AGaLiTe (cell credit: lambda 0, the rest for up and down)": (2, 3),
    "AGaLiTe (cell credit: lambda 0, the rest for forward and back)": (0, 1),
}


def tree_backup_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    taken_probabilities: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """Advantages ``(n_steps, n_envs)`` by the recursion in the module docstring, laid out as SB3's
    rollout buffer lays them out (``episode_starts[t]``: step ``t`` began an episode; ``dones`` and
    ``last_values``: after the last step). With every probability 1 it is SB3's GAE."""
    advantages = np.zeros_like(values)
    advantage = np.zeros_like(last_values)
    for step in reversed(range(values.shape[0])):
        if step == values.shape[0] - 1:
            non_terminal, next_values, trace = 1.0 - dones.astype(np.float32), last_values, np.ones_like(last_values)
        else:
            non_terminal, next_values, trace = 1.0 - episode_starts[step + 1], values[step + 1], taken_probabilities[step + 1]
        delta = rewards[step] + gamma * next_values * non_terminal - values[step]
        advantage = delta + gamma * gae_lambda * non_terminal * trace * advantage
        advantages[step] = advantage
    return advantages


def buffer_tree_backup(buffer: Any, last_values: Any, dones: Any, gae_lambda: float | None = None) -> np.ndarray:
    """:func:`tree_backup_gae` of a full rollout buffer at its own gamma and at ``gae_lambda`` (None: its
    own; the probabilities of the actions taken from its log-probabilities; ``last_values`` and
    ``dones`` as SB3's ``compute_returns_and_advantage`` takes them)."""
    return tree_backup_gae(
        buffer.rewards,
        buffer.values,
        buffer.episode_starts,
        np.exp(buffer.log_probs),
        last_values.clone().cpu().numpy().flatten(),
        np.asarray(dones),
        buffer.gamma,
        buffer.gae_lambda if gae_lambda is None else gae_lambda,
    ).astype(np.float32)


def gae_at_lambda(
    buffer: Any, compute: Callable[..., None], gae_lambda: float, last_values: Any, dones: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Copies of the advantages and returns that ``compute`` (a rollout buffer's own
    ``compute_returns_and_advantage``) gives at ``gae_lambda``; the buffer's lambda is put back, its
    advantages and returns are left as ``compute`` wrote them."""
    own = buffer.gae_lambda
    buffer.gae_lambda = gae_lambda
    try:
        compute(last_values=last_values, dones=dones)
    finally:
        buffer.gae_lambda = own
    return buffer.advantages.copy(), buffer.returns.copy()


def tree_backup_advantages(agent: Any) -> None:
    """After each rollout, replace ``agent``'s advantages by :func:`tree_backup_gae`'s (the
    probabilities of the actions taken, under the rollout's policy, from the buffer's log-probabilities),
    keeping the returns SB3 computed (the critic's targets)."""
    buffer = agent.rollout_buffer
    compute = buffer.compute_returns_and_advantage

    def compute_tree_backup(last_values: Any, dones: Any) -> None:
        compute(last_values=last_values, dones=dones)
        buffer.advantages = buffer_tree_backup(buffer, last_values, dones)

    buffer.compute_returns_and_advantage = compute_tree_backup


#: an edit of the rest of the cell's credit (the agent's advantages less those at the cell's lambda):
#: ``(rollout buffer, rest) -> the rest the cell gets``
RestEdit = Callable[[Any, np.ndarray], np.ndarray]


def random_signs_per_episode(seed: int) -> RestEdit:
    """The rest times a random sign drawn per episode (episode ids count the starts along each env):
    the same size and course of credit, with nothing of what the episode's outcome said (a test of
    whether what the rest gives the memory is signal or noise)."""
    signs = np.random.default_rng(seed)

    def flip(buffer: Any, rest: np.ndarray) -> np.ndarray:
        episodes = np.cumsum(buffer.episode_starts, axis=0).astype(np.int64)
        flips = signs.choice([-1.0, 1.0], size=(int(episodes.max()) + 1, buffer.n_envs))
        return rest * flips[episodes, np.arange(buffer.n_envs)]

    return flip


def clipped_to(bounds: list[np.ndarray]) -> RestEdit:
    """The rest clipped, step by step, to ``[-bound, bound]``, ``bounds`` one ``(n_envs,)`` array per
    rollout step as :func:`~benchmarks.probes.action_values.action_value_critic` fills them: the later
    surprise a step's action takes is at most what the action values say an action there can change.
    Where the action does nothing (a recall's delay) the bound is near zero and the cell keeps the
    step's own surprise only; where it matters (a step along T-Maze's corridor, forward against back)
    the outcome's share passes."""

    def clip(buffer: Any, rest: np.ndarray) -> np.ndarray:
        if len(bounds) != buffer.buffer_size:
            raise RuntimeError(f"{len(bounds)} bounds for a rollout of {buffer.buffer_size} steps")
        bound = np.stack(bounds)
        return np.clip(rest, -bound, bound)

    return clip


def weighted_by(weights: Callable[[Any], np.ndarray]) -> RestEdit:
    """The rest times each step's weight, ``weights`` a function of the full rollout buffer giving
    ``(n_steps, n_envs)`` weights."""
    return lambda buffer, rest: weights(buffer) * rest


def split_actor_credit(
    agent: Any, cell_lambda: float | None, tree_backup: bool = False, edit_rest: RestEdit | None = None
) -> None:
    """The actor's gradient into the cell from advantages at ``cell_lambda`` (None: the agent's), with
    ``tree_backup`` by :func:`tree_backup_gae`'s traces, its gradient into its own head from the
    agent's (GAE at ``gae_lambda``); the critic as it is. With ``edit_rest`` the cell's advantages are
    those at ``cell_lambda`` plus ``edit_rest`` of the rest of the agent's (their difference):
    :func:`random_signs_per_episode`, :func:`clipped_to`, :func:`weighted_by`.

    The washer of a faint cue is the memory's share of the actor's credit for unscored actions, while
    T-Maze's corridor is learned by the actor's head (the position is in the observation) from the
    long credit. Each minibatch's policy loss is two clipped surrogates with the same probability
    ratio: one with the agent's advantages through a head that reads the cell's output detached, one
    with the cell's advantages through the head's parameters detached. The rollout buffer keeps the
    two advantages as two columns; the running advantage scale counts the first, and scales both.
    Discrete actions (the probes' tasks)."""
    import torch
    from torch.func import functional_call

    from sb3_rtx.advantages import scale_advantages

    policy, buffer = agent.policy, agent.rollout_buffer
    compute = buffer.compute_returns_and_advantage

    def compute_both(last_values: Any, dones: Any) -> None:
        lam = buffer.gae_lambda if cell_lambda is None else cell_lambda
        if tree_backup:
            for_cell = buffer_tree_backup(buffer, last_values, dones, lam)
        elif lam != buffer.gae_lambda:
            for_cell, _ = gae_at_lambda(buffer, compute, lam, last_values, dones)
        compute(last_values=last_values, dones=dones)  # the head's advantages, the critic's returns
        if not tree_backup and lam == buffer.gae_lambda:
            for_cell = buffer.advantages.copy()
        if edit_rest is not None:
            for_cell = (for_cell + edit_rest(buffer, buffer.advantages - for_cell)).astype(np.float32)
        buffer.advantages = np.stack([buffer.advantages, for_cell], axis=-1)

    buffer.compute_returns_and_advantage = compute_both
    update_scale = agent.advantage_scale.update
    agent.advantage_scale.update = lambda advantages: update_scale(advantages[..., 0])

    head = torch.nn.Sequential(policy.mlp_extractor.policy_net, policy.action_net)
    split: dict[str, torch.Tensor] = {}
    # the actor's latent of the last call, so the split wraps whichever critic the policy has (an
    # action-value critic's evaluate_actions too)
    latents, evaluate = policy._latents, policy.evaluate_actions

    def capturing_latents(obs: Any, state: Any, episode_starts: Any) -> tuple:
        latent_pi, latent_vf, new_state = latents(obs, state, episode_starts)
        split["latent_pi"] = latent_pi
        return latent_pi, latent_vf, new_state

    def evaluate_actions(obs: Any, actions: torch.Tensor, state: Any, episode_starts: Any) -> tuple:
        values, log_prob, entropy = evaluate(obs, actions, state, episode_starts)
        scaled = split.pop("latent_pi") * policy.actor_input_scale
        detached = {name: parameter.detach() for name, parameter in head.named_parameters()}
        split["head"] = torch.distributions.Categorical(logits=head(scaled.detach())).log_prob(actions)
        split["cell"] = torch.distributions.Categorical(logits=functional_call(head, detached, (scaled,))).log_prob(actions)
        return values, log_prob, entropy

    def policy_loss(rollout_data: Any, log_prob: torch.Tensor, running_scale: float, clip_range: float) -> tuple:
        loss = torch.zeros(())
        for column, path in enumerate(("head", "cell")):
            advantages = scale_advantages(rollout_data.advantages[:, column], agent.normalize_advantage, running_scale)
            ratio = torch.exp(split[path] - rollout_data.old_log_prob)
            clipped = torch.clamp(ratio, 1 - clip_range, 1 + clip_range)
            loss = loss - torch.min(advantages * ratio, advantages * clipped).mean()
        return loss, torch.exp(log_prob - rollout_data.old_log_prob)

    policy._latents = capturing_latents
    policy.evaluate_actions = evaluate_actions
    agent._policy_loss = policy_loss


def is_memory_projection(name: str) -> bool:
    """Whether a policy parameter is one of the memory's input projections (see
    :data:`MEMORY_PROJECTIONS_LAMBDA_0`): GatedFeatures' fused ``project`` and its ``value_conv``."""
    return ".mixer.features.project." in name or ".mixer.features.value_conv." in name


def memory_rows(policy: Any, part: str) -> Callable[[str], Any]:
    """Which rows of each parameter of ``policy``'s AGaLiTe memories are on the cell's path, for
    :func:`split_parameter_credit`: a name -> ``False`` or a boolean mask of the parameter's shape.
    ``part``: ``"values"`` (every head's value rows of the fused projection, ``[wk wq v beta g p1 p2
    p3]`` per head, weight and bias; the value convolution and its direct path, all of whose channels
    are values) or ``"long head"`` (the first head's rows of the projection, its channels of the
    convolution and its row of the direct path)."""
    import torch

    from sb3_rtx.cells.galite import GatedFeatures

    if part not in ("values", "long head"):
        raise ValueError(f"memory_rows: part must be 'values' or 'long head', got {part!r}")
    masks: dict[str, torch.Tensor] = {}
    for module_name, module in policy.named_modules():
        if not isinstance(module, GatedFeatures):
            continue
        heads, d, eta = module.n_heads, module.d_head, module.eta
        rows = torch.zeros(heads, 5 * d + 3 * eta, dtype=torch.bool)  # the projection's rows, per head
        channels = torch.zeros(heads, d, dtype=torch.bool)  # the convolution's and direct path's, per head
        if part == "values":
            rows[:, 2 * d : 3 * d] = True
            channels[:] = True
        else:
            rows[0], channels[0] = True, True
        for name, parameter in module.named_parameters():
            if name.startswith("project."):
                mask = rows.flatten() if parameter.dim() == 1 else rows.flatten()[:, None].expand_as(parameter)
            elif name.startswith("value_conv."):
                mask = channels.flatten()[:, None].expand_as(parameter)
            elif name == "value_skip":
                mask = channels
            else:
                continue
            masks[f"{module_name}.{name}"] = mask.to(parameter.device)
    if not masks:
        raise ValueError("memory_rows: the policy has no AGaLiTe or GaLiTe memory")
    return lambda name: masks.get(name, False)


def split_parameter_credit(
    agent: Any,
    cell_lambda: float,
    on_cell_path: Callable[[str], Any],
    head_keeps_all: bool = False,
    before_run: Callable[[bool | None], None] | None = None,
) -> None:
    """The actor's gradient into the parameters named by ``on_cell_path`` from advantages at
    ``cell_lambda``, into every other parameter from the agent's (GAE at ``gae_lambda``); the value
    loss's and the entropy's gradients as usual. The rollout buffer keeps both advantages (RtxPPO's
    ``cell_gae_lambda`` machinery); each minibatch runs the policy twice through
    ``torch.func.functional_call``, once with the ``on_cell_path`` parameters detached (its
    log-likelihood weighed by the agent's advantages), once with the others detached (weighed by
    those at ``cell_lambda``), and the values and entropy are the sum of both runs' gradients
    (``a + b - a.detach()``). ``on_cell_path`` may also give a boolean mask of a parameter's shape
    (:func:`memory_rows`): its rows there learn from ``cell_lambda``, the others from the agent's.
    ``head_keeps_all``: the agent's run keeps every parameter live, and ``before_run(on_cell)``,
    called before each run (and with None after both), routes which path carries which gradient
    (:func:`split_value_routes`). With every cell parameter on the cell path it is
    :meth:`RtxActorCriticPolicy.evaluate_actions_split`'s split (a test checks it)."""
    import torch
    from torch.func import functional_call

    policy = agent.policy
    agent.rollout_buffer.cell_gae_lambda = cell_lambda

    class Evaluate(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, *inputs: Any) -> Any:
            return self.policy.evaluate_actions(*inputs)

    named = list(policy.named_parameters())
    paths = {name: on_cell_path(name) for name, _ in named}  # once: masks are built for the parameters' shapes

    def side(on_cell: bool) -> dict[str, torch.Tensor]:
        """The parameters of one run: those (or the rows) on the other side detached."""
        chosen = {}
        for name, parameter in named:
            path = paths[name]
            if isinstance(path, torch.Tensor):  # rows: live where on this side, detached elsewhere
                live, held = (parameter, parameter.detach()) if on_cell else (parameter.detach(), parameter)
                chosen[f"policy.{name}"] = torch.where(path, live, held)
            elif bool(path) != on_cell:
                chosen[f"policy.{name}"] = parameter.detach()
        return chosen

    def run(on_cell: bool, inputs: tuple) -> Any:
        if before_run is not None:
            before_run(on_cell)
        parameters = {} if head_keeps_all and not on_cell else side(on_cell)
        return functional_call(Evaluate(), parameters, inputs)

    def evaluate_minibatch(rollout_data: Any, actions: Any, running_scale: float, clip_range: float) -> tuple:
        inputs = (rollout_data.observations, actions, rollout_data.cell_states, rollout_data.episode_starts)
        values, log_prob, entropy = run(False, inputs)
        cell_values, log_prob_cell, cell_entropy = run(True, inputs)
        if before_run is not None:
            before_run(None)
        head_loss, ratio = agent._policy_loss(rollout_data, log_prob, running_scale, clip_range)
        for_cell = rollout_data._replace(advantages=rollout_data.cell_advantages)
        cell_loss, _ = agent._policy_loss(for_cell, log_prob_cell, running_scale, clip_range)
        values = values + cell_values - values.detach()
        if entropy is not None:
            entropy = entropy + cell_entropy - entropy.detach()
        return values, log_prob, entropy, [head_loss, cell_loss], ratio

    agent._evaluate_minibatch = evaluate_minibatch


def without_cell_credit(agent: Any) -> None:
    """The advantages of the cell's side of a split (``cell_advantages``) set to zero after every
    rollout's GAE: that side's parameters then get no policy gradient (PPO's clipped objective is zero
    at a zero advantage), only the value loss's and the entropy's."""
    buffer = agent.rollout_buffer
    compute = buffer.compute_returns_and_advantage

    def compute_without(*args: Any, **kwargs: Any) -> None:
        compute(*args, **kwargs)
        buffer.cell_advantages[...] = 0.0

    buffer.compute_returns_and_advantage = compute_without


def route_values(policy: Any) -> Callable[[str | None], None]:
    """Patch ``policy``'s AGaLiTe and GaLiTe memories so that a run can detach their values where
    they enter the memory (``"memory"``) or where they take the direct path (``"direct"``, the
    convolved values added to the read); returns the setter (None: neither). Only for one-layer
    cells whose memory reads the observation: in a deeper cell the parameters before a layer's
    values would lose their share through that layer's memory in both runs (a read by running statistics
    has no parameters before the projection either)."""
    from sb3_rtx.cells.galite import GatedFeatures
    from sb3_rtx.cells.input_statistics import READS as STATISTICS_READS

    route: dict[str, str | None] = {"detach": None}
    memories = [module for module in policy.modules() if isinstance(module, GatedFeatures)]
    if not memories:
        raise ValueError("route_values: the policy has no AGaLiTe or GaLiTe memory")
    for cell in (getattr(policy, "cell_actor", None), getattr(policy, "cell_critic", None)):
        if cell is not None and (len(cell.blocks) != 1 or cell.memory_input not in ("observation", *STATISTICS_READS)):
            raise ValueError("route_values: only for one-layer cells whose memory reads the observation")
    for memory in memories:

        def select_writes(factors: tuple, h: Any, values: bool, select: Callable = memory.select_writes) -> Any:
            if route["detach"] == "memory":  # the values the memory writes, v at index 4
                factors = (*factors[:4], factors[4].detach(), *factors[5:])
            return select(factors, h, values)

        def merge_heads(a: Any, values: Any = None, merge: Callable = memory.merge_heads) -> Any:
            if route["detach"] == "direct" and values is not None:
                values = values.detach()
            return merge(a, values)

        memory.select_writes, memory.merge_heads = select_writes, merge_heads
    return lambda where: route.__setitem__("detach", where)


def values_own_rows(policy: Any) -> Callable[[str], Any]:
    """:func:`memory_rows`' ``"values"`` less the direct path's own weight (``value_skip``), which is
    on that path alone, so the agent's run in :func:`split_value_routes` takes its whole gradient."""
    rows = memory_rows(policy, "values")
    return lambda name: False if name.endswith(".value_skip") else rows(name)


def split_value_routes(agent: Any, cell_lambda: float) -> None:
    """The values' gradient through the memory from the advantages at ``cell_lambda``; through the
    direct path, and every other parameter's, from the agent's. The agent's run keeps every
    parameter live with the values into the memory detached; the other run keeps the values' own
    parameters live (their rows of the projection and the convolution, :func:`values_own_rows`) with the
    values' direct path detached, so each of their gradients is taken once, in one run or the other."""
    route = route_values(agent.policy)
    split_parameter_credit(
        agent,
        cell_lambda,
        values_own_rows(agent.policy),
        head_keeps_all=True,
        before_run=lambda on_cell: route(None if on_cell is None else ("direct" if on_cell else "memory")),
    )


#: every variant :func:`edit_credit` edits, as the phases probes list variants: label -> (the memory
#: suite's model it edits, policy keywords added: none)
CREDIT_VARIANTS: dict[str, tuple[str, dict]] = {
    label: (label.split(" (")[0], {})
    for label in (
        TREE_BACKUP,
        *CELL_LAMBDAS,
        CELL_TREE_BACKUP,
        CELL_RANDOM_REST,
        CELL_ACTION_BOUND,
        CELL_ACTION_SHOWN,
        CELL_STEP_SHOWN,
        *CELL_REST_SHARES,
        *CELL_REST_FOR_ACTIONS,
        MEMORY_PROJECTIONS_LAMBDA_0,
        MEMORY_PROJECTIONS_NO_ACTOR,
        *MEMORY_ROWS_LAMBDA_0,
        VALUES_INTO_MEMORY_LAMBDA_0,
    )
} | REWARD_PREDICTION_VARIANTS


def edit_credit(agent: Any, model: str, seed: int) -> None:
    """Apply a phases-probe variant's edit of the actor's credit to a built ``agent`` (none for other
    labels); ``seed`` seeds the random signs of :data:`CELL_RANDOM_REST`."""
    if model in REWARD_PREDICTION_VARIANTS:  # not a credit edit, but applied where the probes apply theirs
        from benchmarks.probes.reward_prediction import predict_rewards

        predict_rewards(agent)
    elif model == TREE_BACKUP:
        tree_backup_advantages(agent)
    elif model == MEMORY_PROJECTIONS_LAMBDA_0:
        split_parameter_credit(agent, 0.0, is_memory_projection)
    elif model == MEMORY_PROJECTIONS_NO_ACTOR:
        split_parameter_credit(agent, 0.0, is_memory_projection)
        without_cell_credit(agent)
    elif model == VALUES_INTO_MEMORY_LAMBDA_0:
        split_value_routes(agent, 0.0)
    elif model in MEMORY_ROWS_LAMBDA_0:
        split_parameter_credit(agent, 0.0, memory_rows(agent.policy, MEMORY_ROWS_LAMBDA_0[model]))
    elif model in CELL_LAMBDAS:
        split_actor_credit(agent, CELL_LAMBDAS[model])
    elif model == CELL_TREE_BACKUP:
        split_actor_credit(agent, None, tree_backup=True)
    elif model == CELL_RANDOM_REST:
        split_actor_credit(agent, 0.0, edit_rest=random_signs_per_episode(seed))
    elif model == CELL_ACTION_BOUND:  # the dueling critic rebuilds the optimiser: no other edit of it before
        from benchmarks.probes.action_values import action_value_critic

        spreads = action_value_critic(agent, dueling=True, advantages_from_q=False)
        split_actor_credit(agent, 0.0, edit_rest=clipped_to(spreads))
    elif model in (CELL_ACTION_SHOWN, CELL_STEP_SHOWN):
        from benchmarks.probes.inverse_dynamics import action_shown_weights

        weights = action_shown_weights(agent, seed, per_state=model == CELL_STEP_SHOWN)
        split_actor_credit(agent, 0.0, edit_rest=weighted_by(weights))
    elif model in CELL_REST_SHARES:
        share = CELL_REST_SHARES[model]
        split_actor_credit(agent, 0.0, edit_rest=lambda buffer, rest: share * rest)
    elif model in CELL_REST_FOR_ACTIONS:
        actions = CELL_REST_FOR_ACTIONS[model]

        def for_actions(buffer: Any) -> np.ndarray:
            return np.isin(buffer.actions.reshape(buffer.values.shape), actions).astype(np.float32)

        split_actor_credit(agent, 0.0, edit_rest=weighted_by(for_actions))
