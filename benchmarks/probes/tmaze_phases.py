"""Probe: where does T-Maze 40's step budget go? The cue reaching the cell's output, then the actor using it.

    python -m benchmarks.probes.tmaze_phases --jobs 2
    python -m benchmarks.probes.tmaze_phases --quick        # smoke run (CI)

On the development set AGaLiTe solves T-Maze 40 (4 distractor bits, 150k steps) in some seeds and
not others (docs, "Learning memory"); the seeds that fail walk to the junction and guess. This
probe trains the memory suite's models on that task, with its settings and seeds (``--gae-lambda``
for another lambda, ``--value-lambda`` for the critic's targets at another lambda than the
advantages, :func:`split_lambdas`), and every ``--every`` rollouts looks at the policy on a fixed
set of walks: 384 episodes (their own seeds, half of each cue) in which the agent walks straight
to the junction, fed through the policy as one sequence each. At the junction it measures:

* **cue share**: the fraction of the variance of the cell's output (what the actor's head reads),
  across the 384 walks, that the cue explains (between-cue variance over total, summed over the
  output's dimensions): how much of what the heads see at the junction is the cue.
* **cue readable**: the same fraction along the one direction that separates the cues best in
  mean (their mean difference), 1 when the output along it is the cue and nothing else. At the
  start a fresh cell already carries the cue in some direction (a linear read-out names it on
  held-out walks), weakly: this says when that direction becomes dominant.
* **actor uses it**: the actor's probability of the cued arm, given that it turns (the two arms'
  probabilities renormalised), averaged over the walks; 0.5 when it ignores the cue.

And what the heads see: the output's root mean square at the junction, the part of its mean
square that is the same in every walk (the constant part: the squared mean over walks over the
mean square), and the fraction of the
actor's first-layer units (SB3's tanh) that are saturated (``|tanh| > 0.95``, derivative under 0.1)
over every step of the walks.

Reported per model: the step at which the cue became readable (first check with cue readable >=
0.9), the step at which the actor used it (first check with actor >= 0.9; ``-``: never within
the budget), and the final policy's success rate as the memory suite scores it (deterministic, 96
episodes); every seed. The curves of all three measures go to the runs file
(``tmaze_phases_runs.jsonl``). Table: ``benchmarks/results/probes/tmaze_phases.md`` / ``.csv``.

Models: the memory suite's (:data:`benchmarks.memory_suite.MODELS`), by label, with the RtxPPO keywords of
:data:`~benchmarks.memory_suite.ALGO_CHOICES`, and probe-local
variants of them (:data:`VARIANTS`): ``AGaLiTe (relu heads)``, the default AGaLiTe with the heads'
hidden layers relu (``activation_fn=nn.ReLU``) instead of SB3's tanh; ``AGaLiTe (read layer scale
0.1)``, the default AGaLiTe whose read is multiplied by a learned per-channel scale starting at 0.1
before it joins the stream (LayerScale); ``AGaLiTe (heads read centred output)``, the default AGaLiTe
whose output, as the heads read it, is centred by its mean over the previous rollout's acting steps;
``AGaLiTe (actor reads centred output)``, the same centre for the actor's head alone;
``AGaLiTe (quiet critic, cell gradient kept)``, ``critic_init_scale=0.04`` with the gradient the
critic's head sends into the cell multiplied by 1 / 0.04 (at least the default's: the quiet head is
not saturated, so it passes more back per unit than the default's); ``AGaLiTe (critic gradient
stopped)``, the default with none of the critic's gradient reaching the cell; ``AGaLiTe (vf_coef
1.0)``, the default with PPO's value loss weighted 1.0 (SB3's default 0.5); ``AGaLiTe (relu critic
head)``, the critic's hidden layer relu, the actor's tanh; ``AGaLiTe (value output starts at
zero)``, the value output layer (64 -> 1) started at zero (the policy keyword
``value_init_scale=0``); ``AGaLiTe (critic reads output x0.04, cell gradient kept)``, the critic's
head reading the output times 0.04 (its weights at SB3's start) while the gradient it sends into the
cell is not scaled down with it; ``AGaLiTe (linear value path)``, the value plus a linear function
of the cell's output learned from zero; ``AGaLiTe (dual critic: quiet baseline)``, a second, quiet
value head (first layer x0.04, its input's gradient stopped) whose value is PPO's baseline, beside
the default head, which is fitted to the returns too and alone teaches the cell;
``AGaLiTe (dual critic, both gradients)``, the same with the quiet head's gradient reaching the cell
too; ``AGaLiTe (critic input gain learned from 1)``, the critic's head reading the output times a
learned scalar that starts at 1; ``AGaLiTe (actor reads output x0.2)``, the actor's head reading the
output times 0.2, the critic's reading it as it is; ``AGaLiTe (actor input x0.2, cell gradient x5)``,
the default (whose actor reads the output x0.2) with the gradient the actor's head sends into the cell
multiplied by 5, as large as at ``actor_input_scale=1``; ``AGaLiTe (actor gradient stopped)``, the
default with none of the actor's gradient reaching the cell; ``GaLiTe (actor input x0.2, cell
gradient x5)``, the same for GaLiTe with the actor's quieter input; ``AGaLiTe (action-value advantages)``, a critic of
one value per action whose advantages carry no later step's surprise (:mod:`benchmarks.probes.action_values`),
``AGaLiTe (dueling action values)``, the same split into a state value and the actions' advantages,
``AGaLiTe (tree-backup advantages)``, the actor's advantages with tree-backup traces (:mod:`benchmarks.probes.credit`),
and ``AGaLiTe (cell credit at lambda 0)`` / ``(... 0.5)``, the actor's gradient into the cell from
advantages at lambda 0 / 0.5, ``AGaLiTe (cell credit by tree backup)``, from tree-backup
advantages, and ``AGaLiTe (cell credit: lambda 0, the rest by random signs)``, from those at lambda 0
plus the rest of GAE's with a random sign per episode (:func:`~benchmarks.probes.credit.split_actor_credit`);
the other edits of the cell's share of that rest (bounded by action values, weighed by an inverse
model per action or per step, a fixed share, the T-Maze diagnostics by action) are listed in
:data:`~benchmarks.probes.credit.CREDIT_VARIANTS`.
All but three (``vf_coef``, ``value_init_scale``,
``actor_input_scale``) are edited into the built models, not options of the library.
"""

from __future__ import annotations

import argparse
import json
import time
from statistics import median
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.memory_suite import ALGO_CHOICES, MODELS, TASKS
from benchmarks.probes.action_values import ACTION_VALUE_VARIANTS, DUELING, action_value_critic
from benchmarks.probes.credit import CREDIT_VARIANTS, edit_credit, gae_at_lambda
from benchmarks.report import command_line, write_report
from benchmarks.tmaze_runs import N_ENVS, NET_ARCH, PPO, RunSpec, build_model, final_score

RESULTS = Path(__file__).resolve().parents[1] / "results" / "probes"
TASK = "tmaze-40"
#: probe-local variants: label -> (the memory suite's model, policy keywords added to it)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # the heads' hidden layers relu instead of SB3's tanh: none of their units can saturate
    "AGaLiTe (relu heads)": ("AGaLiTe", dict(activation_fn="relu")),
    # the memory's read times a learned per-channel scale that starts at 0.1 before it joins the stream
    # (LayerScale, Touvron et al. 2021, at CaiT's start for shallow networks): the output starts small, as
    # behind GTrXL's gate, and the read's share can grow where it pays; edited into the built cells
    "AGaLiTe (read layer scale 0.1)": ("AGaLiTe", {}),
    # the heads read the cell's output minus its mean over the previous rollout's acting steps: the same
    # output, centred (LeCun et al. 1998, "Efficient BackProp": a layer learns slowest along its inputs'
    # small directions when their mean is large); edited into the built cells
    "AGaLiTe (heads read centred output)": ("AGaLiTe", {}),
    # the actor's head alone reads the centred output (the critic reads it as it is, so the first phase,
    # the critic's, is the default's): the actor's first layer then learns from what varies, not from the
    # large part that is the same in every walk (98% of the output's mean square at the junction)
    "AGaLiTe (actor reads centred output)": ("AGaLiTe", {}),
    # the quiet critic (its first layer starts x0.04), with the gradient it sends into the shared cell
    # multiplied back by 1 / 0.04: does the quiet critic lose T-Maze by starving the memory of the
    # critic's gradient (which the small start scales down with it), or by its quiet value itself?
    "AGaLiTe (quiet critic, cell gradient kept)": ("AGaLiTe", dict(critic_init_scale=0.04)),
    # the default critic, none of whose gradient reaches the cell: the memory learns from the actor alone
    "AGaLiTe (critic gradient stopped)": ("AGaLiTe", {}),
    # PPO's value loss weighted 1.0 instead of SB3's 0.5: more of the gradient that teaches the memory
    # the cue (see the row above), relative to the policy gradient's, in the shared cell
    "AGaLiTe (vf_coef 1.0)": ("AGaLiTe", dict(vf_coef=1.0)),
    # the critic's hidden layer relu instead of SB3's tanh (the actor's stays tanh): a critic head that
    # cannot saturate behind the loud output and passes its gradient back whole
    "AGaLiTe (relu critic head)": ("AGaLiTe", {}),
    # the value output layer (the critic's last, 64 -> 1) starts at zero: the value starts at 0 as behind
    # the quiet critic, while the critic's hidden layer keeps SB3's start; the gradient into the cell
    # starts at zero and grows as fast as that one layer learns
    "AGaLiTe (value output starts at zero)": ("AGaLiTe", dict(value_init_scale=0.0)),
    # the critic's head reads the cell's output x0.04 (the LSTM's output size: its tanh layer starts in
    # its linear range, its weights at SB3's start), while the gradient it sends into the cell is not
    # scaled down with it: a quiet critic input, unlike the quiet critic's small weights, keeps the
    # critic's function-space learning rate low and its gradient into the memory as loud as the default's
    "AGaLiTe (critic reads output x0.04, cell gradient kept)": ("AGaLiTe", {}),
    # the value plus a linear function of the cell's output (weights starting at zero, so the start
    # is the default's): beside the saturated tanh layer, whose value is nearly piecewise constant in
    # the output (it tells the cue's two values apart), a path that can learn a smooth value fast
    "AGaLiTe (linear value path)": ("AGaLiTe", {}),
    # two value heads on the shared cell's output, both fitted to the returns: the default's (loud, SB3's
    # start), whose gradient teaches the cell as today's does, and a quiet one (its first layer x0.04,
    # reading the output with its gradient stopped) whose value is PPO's baseline; the auxiliary value
    # head beside a separate value function of Phasic Policy Gradient (Cobbe et al. 2021), here to give
    # control the quiet critic's baseline without taking the loud critic's teaching from the memory
    "AGaLiTe (dual critic: quiet baseline)": ("AGaLiTe", {}),
    # the same two heads, the quiet one's gradient reaching the cell too: the memory learns from both the
    # saturated critic's gradient (what taught T-Maze its cue) and an unsaturated one's (what helped control)
    "AGaLiTe (dual critic, both gradients)": ("AGaLiTe", {}),
    # the critic's head reads the cell's output times a learned scalar starting at 1: the default's start
    # (its saturated head, its gradient into the memory), free to learn a quieter input where that pays
    "AGaLiTe (critic input gain learned from 1)": ("AGaLiTe", {}),
    # the actor's head reads the cell's output x0.2, the critic's as it is (the policy's actor_input_scale;
    # a plain product, so the actor's gradient into the cell is a fifth as large too): 0.2 is GTrXL's output
    # size, so an Adam step on the actor's first layer moves its output a fifth as far, while the critic,
    # whose gradient teaches the memory T-Maze's cue, keeps the default's view
    "AGaLiTe (actor reads output x0.2)": ("AGaLiTe", dict(actor_input_scale=0.2)),
    # the default (the actor reads the output x0.2), with the gradient the actor's head sends into the
    # cell multiplied back by 5: the forward of the actor's quieter input, the gradient into the memory of
    # actor_input_scale=1 (the product cuts both; which of the two did the work was not separated)
    "AGaLiTe (actor input x0.2, cell gradient x5)": ("AGaLiTe", {}),
    # the default with none of the actor's gradient reaching the cell: the memory learns from the critic
    # alone, the actor's head reads what it learned
    "AGaLiTe (actor gradient stopped)": ("AGaLiTe", {}),
    # GaLiTe's actor reading its output x0.2 (which cost GaLiTe T-Maze seeds), with its gradient into the
    # cell multiplied back by 5: was what it cost GaLiTe the gradient cut?
    "GaLiTe (actor input x0.2, cell gradient x5)": ("GaLiTe", dict(actor_input_scale=0.2)),
    # the cell's parameters step at a quarter of the learning rate, the heads' at the full rate (an Adam
    # step's size does not follow the gradient's, so a smaller gradient would not do it): is what washes
    # a faint cue out the memory's own updates, while the heads need the full rate to use it?
    "AGaLiTe (cell learns at x0.25)": ("AGaLiTe", {}),
    # the complement: the heads at a quarter of the rate, the cell at the full rate
    "AGaLiTe (heads learn at x0.25)": ("AGaLiTe", {}),
    # a critic of action values whose advantages carry no later surprise where the action does not
    # matter, plain and dueling (benchmarks.probes.action_values); the edits of the actor's credit,
    # tree-backup traces and the cell's credit apart from the head's (benchmarks.probes.credit)
    **ACTION_VALUE_VARIANTS,
    **CREDIT_VARIANTS,
}


def rebuild_optimizer(agent: Any, params: Any = None) -> None:
    """Build the policy's optimiser again as SB3 built it (its class and keywords, the schedule's first
    rate) over ``params`` (default: every parameter of the policy), after a probe edit added parameters
    or splits them into groups."""
    policy = agent.policy
    params = policy.parameters() if params is None else params
    policy.optimizer = policy.optimizer_class(params, lr=agent.lr_schedule(1), **policy.optimizer_kwargs)


def relu_critic(agent: Any) -> None:
    """Replace the critic head's hidden activations (SB3's tanh) by relu; the actor's stay tanh."""
    import torch

    value_net = agent.policy.mlp_extractor.value_net
    for index, module in enumerate(value_net):
        if isinstance(module, torch.nn.Tanh):
            value_net[index] = torch.nn.ReLU()


def linear_value_path(agent: Any) -> None:
    """Add ``w . x`` to the value, ``x`` what the critic's head reads (the cell's output) and ``w``
    learned from zero, and rebuild the optimiser so that it trains ``w`` too."""
    import torch

    policy = agent.policy
    extractor = policy.mlp_extractor
    width = next(m for m in extractor.value_net.modules() if isinstance(m, torch.nn.Linear)).in_features
    hidden = extractor.latent_dim_vf
    forward_critic = extractor.forward_critic

    class WithLinearPath(torch.nn.Module):
        def __init__(self, value_net: torch.nn.Module) -> None:
            super().__init__()
            self.value_net, self.linear_path = value_net, torch.nn.Linear(width, 1, bias=False)
            torch.nn.init.zeros_(self.linear_path.weight)

        def forward(self, both: torch.Tensor) -> torch.Tensor:
            return self.value_net(both[..., :hidden]) + self.linear_path(both[..., hidden:])

    extractor.forward_critic = lambda features: torch.cat([forward_critic(features), features], dim=-1)
    policy.value_net = WithLinearPath(policy.value_net)
    rebuild_optimizer(agent)


def learned_critic_input_gain(agent: Any, start: float) -> None:
    """The critic's head reads the cell's output times a learned scalar starting at ``start`` (the
    plain product: its gradient into the cell scales with it), and the optimiser is rebuilt to train it."""
    import torch

    policy = agent.policy
    value_net = policy.mlp_extractor.value_net
    value_net.register_parameter("probe_input_gain", torch.nn.Parameter(torch.tensor(float(start))))
    forward_pass = value_net.forward
    value_net.forward = lambda x: forward_pass(x * value_net.probe_input_gain)
    rebuild_optimizer(agent)


def dual_critic(agent: Any, quiet_scale: float, quiet_gradient: bool = False) -> None:
    """A second value head, its first layer at ``quiet_scale`` times SB3's start and reading the cell's
    output with its gradient stopped (``quiet_gradient``: not stopped), whose value the policy reports
    (rollouts, GAE, the value loss); the default head is trained beside it on its own squared error,
    and its gradient (and the actor's, and the quiet head's with ``quiet_gradient``) reaches the cell. The
    default head's loss is added in backward: RtxPPO's value loss is
    ``vf_coef * mean((R - v) ** 2)`` with ``v`` the reported value, so its gradient ``g`` on ``v``
    gives ``R``, and ``g + 2 vf_coef / N (v_loud - v)`` is the gradient of ``vf_coef * mean((R - v_loud) ** 2)``
    (exact while ``clip_range_vf`` is None, the default)."""
    import torch

    policy = agent.policy
    extractor = policy.mlp_extractor
    width = next(m for m in extractor.value_net.modules() if isinstance(m, torch.nn.Linear)).in_features
    hidden = extractor.latent_dim_vf
    forward_critic = extractor.forward_critic
    vf_coef = agent.vf_coef
    assert agent.clip_range_vf is None, "the dual critic's loss assumes no value clipping"

    class Report(torch.autograd.Function):
        @staticmethod
        def forward(ctx, quiet, loud):
            ctx.save_for_backward(quiet, loud)
            return quiet.clone()

        @staticmethod
        def backward(ctx, grad):
            quiet, loud = ctx.saved_tensors
            return grad, grad + (2.0 * vf_coef / grad.numel()) * (loud - quiet)

    class DualValue(torch.nn.Module):
        def __init__(self, loud: torch.nn.Module) -> None:
            super().__init__()
            self.loud = loud
            self.quiet = torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
            # SB3's starts (orthogonal, gain sqrt 2 for the hidden layer, 1 for the value), the first x quiet_scale
            torch.nn.init.orthogonal_(self.quiet[0].weight, gain=2**0.5 * quiet_scale)
            torch.nn.init.orthogonal_(self.quiet[2].weight, gain=1.0)
            torch.nn.init.zeros_(self.quiet[0].bias)
            torch.nn.init.zeros_(self.quiet[2].bias)

        def forward(self, both: torch.Tensor) -> torch.Tensor:
            return Report.apply(self.quiet(both[..., hidden:]), self.loud(both[..., :hidden]))

    def quiet_input(features: torch.Tensor) -> torch.Tensor:
        return features if quiet_gradient else features.detach()

    extractor.forward_critic = lambda features: torch.cat([forward_critic(features), quiet_input(features)], dim=-1)
    policy.value_net = DualValue(policy.value_net)
    rebuild_optimizer(agent)


#: keywords in a variant's additions that go to RtxPPO, not to the policy
ALGO_KEYWORDS = ("vf_coef",)
#: the variants whose built cells are edited: label -> the read's layer-scale start
READ_LAYER_SCALE = {"AGaLiTe (read layer scale 0.1)": 0.1}
CENTRED = ("AGaLiTe (heads read centred output)",)
#: the variants whose actor's head alone reads the centred output
ACTOR_CENTRED = ("AGaLiTe (actor reads centred output)",)
#: the variants whose critic reads the cell's output scaled: label -> (factor on what it reads, factor on
#: the gradient it sends back into the cell)
CRITIC_INPUT_SCALE = {
    "AGaLiTe (quiet critic, cell gradient kept)": (1.0, 1 / 0.04),
    "AGaLiTe (critic gradient stopped)": (1.0, 0.0),
    "AGaLiTe (critic reads output x0.04, cell gradient kept)": (0.04, 1.0),
}
#: the variants whose actor's head passes its input's gradient back into the cell scaled: label -> factor
ACTOR_GRADIENT_SCALE = {
    "AGaLiTe (actor input x0.2, cell gradient x5)": 5.0,
    "AGaLiTe (actor gradient stopped)": 0.0,
    "GaLiTe (actor input x0.2, cell gradient x5)": 5.0,
}


#: the variants whose cells or heads learn at a fraction of the learning rate: label -> (the cells'
#: fraction, every other parameter's)
LEARNING_RATE_SCALES = {"AGaLiTe (cell learns at x0.25)": (0.25, 1.0), "AGaLiTe (heads learn at x0.25)": (1.0, 0.25)}


def scale_cell_learning_rate(agent: Any, scale: float, rest_scale: float = 1.0) -> None:
    """The cells' parameters learn at ``scale`` times the schedule's rate, every other parameter (the
    heads) at ``rest_scale`` times it: the optimiser is rebuilt with two parameter groups, and the
    agent's per-update setting of the rate (SB3's ``_update_learning_rate``, which gives every group
    the schedule's value) is followed by each group's factor."""
    policy = agent.policy
    in_cells = {id(parameter) for cell in policy.cells for parameter in cell.parameters()}
    cell = [parameter for parameter in policy.parameters() if id(parameter) in in_cells]
    rest = [parameter for parameter in policy.parameters() if id(parameter) not in in_cells]
    groups = [dict(params=rest, rate_scale=rest_scale), dict(params=cell, rate_scale=scale)]
    rebuild_optimizer(agent, groups)
    set_rate = agent._update_learning_rate

    def set_scaled_rate(optimizers: Any) -> None:
        set_rate(optimizers)
        for group in policy.optimizer.param_groups:
            group["lr"] *= group["rate_scale"]

    agent._update_learning_rate = set_scaled_rate


def split_lambdas(agent: Any, value_lambda: float) -> None:
    """Fit the critic to GAE returns at ``value_lambda`` while the actor's advantages keep the agent's
    ``gae_lambda`` (SB3 takes both from one lambda): the rollout buffer's
    ``compute_returns_and_advantage`` runs twice, and the first run's returns (advantages plus values
    at ``value_lambda``) replace the second's. A diagnostic of which of the two uses of lambda a task
    needs (the actor's credit for earlier actions, or the critic's targets)."""
    buffer = agent.rollout_buffer
    compute = buffer.compute_returns_and_advantage

    def compute_split(last_values: Any, dones: Any) -> None:
        _, returns = gae_at_lambda(buffer, compute, value_lambda, last_values, dones)
        compute(last_values=last_values, dones=dones)
        buffer.returns = returns

    buffer.compute_returns_and_advantage = compute_split


def edit_critic(agent: Any, model: str) -> None:
    """Apply a variant's probe-local edit of the critic's head to a built ``agent`` (none for other labels);
    shared with the pendulum probe, whose critic variants are these."""
    if model in CRITIC_INPUT_SCALE:
        scale_critic_input(agent, *CRITIC_INPUT_SCALE[model])
    elif model == "AGaLiTe (linear value path)":
        linear_value_path(agent)
    elif model == "AGaLiTe (relu critic head)":
        relu_critic(agent)
    elif model == "AGaLiTe (dual critic: quiet baseline)":
        dual_critic(agent, quiet_scale=0.04)
    elif model == "AGaLiTe (dual critic, both gradients)":
        dual_critic(agent, quiet_scale=0.04, quiet_gradient=True)
    elif model == "AGaLiTe (critic input gain learned from 1)":
        learned_critic_input_gain(agent, start=1.0)
    elif model in DUELING:
        action_value_critic(agent, dueling=DUELING[model])


def edit_actor(agent: Any, model: str) -> None:
    """Apply a variant's probe-local edit of the actor's gradient into the cell (none for other labels);
    shared with the recall and pendulum probes."""
    if model in ACTOR_GRADIENT_SCALE:
        scale_module_input(agent.policy.mlp_extractor.policy_net, 1.0, ACTOR_GRADIENT_SCALE[model])


def scale_critic_input(agent: Any, forward: float, backward: float) -> None:
    """The critic's head reads the cell's output times ``forward``; the gradient it sends back into the
    cell is its gradient times ``backward`` (``backward == forward``: the plain product's gradient)."""
    scale_module_input(agent.policy.mlp_extractor.value_net, forward, backward)


def scale_module_input(module: Any, forward: float, backward: float) -> None:
    """``module`` reads its input times ``forward`` and passes back its input's gradient times ``backward``."""
    import torch

    class Scaled(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * forward if forward != 1.0 else x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            return grad * backward

    forward_pass = module.forward
    module.forward = lambda x: forward_pass(Scaled.apply(x))


class OutputCentre:
    """The cells' output minus the mean of their acting outputs over the previous rollout. The mean
    changes only when a rollout starts, so a rollout and the training on it see the same one. With
    ``actor_only`` the cells' output is left as it is and only the actor's head reads it centred (what it
    reads, the output times ``actor_input_scale``, less the mean times the same)."""

    def __init__(self, agent: Any, actor_only: bool = False) -> None:
        import torch

        self.cells = agent.policy.cells
        self.centres = [torch.zeros(cell.d_model) for cell in self.cells]
        self.sums = [torch.zeros(cell.d_model) for cell in self.cells]
        self.counts = [0 for _ in self.cells]
        for index, cell in enumerate(self.cells):
            forward = cell._forward

            def centred(x, state, starts, index=index, forward=forward):
                y, new_state = forward(x, state, starts)
                if y.shape[0] == 1 and not torch.is_grad_enabled():  # an acting step: counted
                    self.sums[index] += y.detach().reshape(-1, y.shape[-1]).sum(0)
                    self.counts[index] += y.shape[1]
                return (y if actor_only else y - self.centres[index]), new_state

            cell._forward = centred
        if actor_only:
            policy = agent.policy
            actor_index = next(i for i, cell in enumerate(self.cells) if cell is policy.cell_actor)
            head, scale = policy.mlp_extractor.policy_net, float(policy.actor_input_scale)
            head_forward = head.forward
            head.forward = lambda x: head_forward(x - scale * self.centres[actor_index])

    def new_rollout(self) -> None:
        for index in range(len(self.cells)):
            if self.counts[index]:
                self.centres[index] = self.sums[index] / self.counts[index]
            self.sums[index].zero_()
            self.counts[index] = 0


def scale_reads(agent: Any, start: float) -> None:
    """Multiply every block's read by a learned per-channel scale starting at ``start`` (before the
    block adds it to its stream), and rebuild the optimiser so that it trains the scales too."""
    import torch

    policy = agent.policy
    for cell in policy.cells:
        for block in cell.blocks:
            mixer = block.mixer
            mixer.register_parameter("probe_scale", torch.nn.Parameter(torch.full((cell.d_model,), start)))
            forward = mixer.forward

            def scaled(h, layer_state, context, mixer=mixer, forward=forward):
                mixed, new_state = forward(h, layer_state, context)
                return mixed * mixer.probe_scale, new_state

            mixer.forward = scaled
    rebuild_optimizer(agent)


DEFAULT_MODELS = [
    "AGaLiTe",
    "AGaLiTe (identity conv init)",
    "AGaLiTe (no value conv)",
    "AGaLiTe (relu heads)",
    "GTrXL",
    "LSTM",
]
WALKS, HELD_OUT, WALK_SEED = 384, 128, 777_000
EVAL_EPISODES = 96
READABLE, USED = 0.9, 0.9
#: a tanh unit whose output is beyond this is saturated (its derivative under 0.1)
SATURATED = 0.95


def walks(env_kwargs: dict) -> tuple[Any, Any]:
    """Observations ``(T, WALKS, d)`` of episodes that walk straight to the junction, and their cues (1 = down)."""
    import numpy as np

    from sb3_rtx.envs.tmaze import FORWARD, TMazeEnv

    sequences, cues = [], []
    for index in range(WALKS):
        env = TMazeEnv(**env_kwargs)
        obs, _ = env.reset(seed=WALK_SEED + index)
        steps = [obs]
        for _ in range(env.corridor_len):
            obs, *_ = env.step(FORWARD)
            steps.append(obs)
        sequences.append(np.stack(steps))
        cues.append(int(steps[0][1] > 0.5))
    return np.stack(sequences, 1), np.array(cues)


def actor_saturated(policy: Any, latent: Any) -> float:
    """The fraction of the actor's first-layer tanh units beyond :data:`SATURATED` on ``latent`` (what
    the heads read), NaN behind relu heads (their units do not saturate). Call under ``no_grad``."""
    import torch

    first, activation = policy.mlp_extractor.policy_net[:2]
    if not isinstance(activation, torch.nn.Tanh):
        return float("nan")
    return float((torch.tanh(first(latent * policy.actor_input_scale)).abs() > SATURATED).float().mean())


def junction_measures(policy: Any, observations: Any, cues: Any) -> dict[str, float]:
    """The three measures of the module docstring, and a held-out linear read-out's accuracy."""
    import numpy as np
    import torch

    from sb3_rtx.envs.tmaze import DOWN, UP

    steps, n, _ = observations.shape
    starts = torch.zeros(steps, n)
    starts[0] = 1.0
    with torch.no_grad():
        latent, _, _ = policy._latents(
            torch.as_tensor(observations.reshape(steps * n, -1)), policy.initial_state(n), starts.reshape(-1)
        )
        junction = latent.reshape(steps, n, -1)[-1]
        probs = torch.softmax(policy.action_net(policy.latent_actor(junction)), -1).numpy()
        # the actor's first layer over every step of the walks: how many of its tanh units are saturated
        saturated = actor_saturated(policy, latent)
    x = junction.numpy().astype(np.float64)
    means = [x[cues == c].mean(0) for c in (0, 1)]
    total = x.var(0).sum()
    between = ((means[1] - means[0]) / 2) ** 2
    direction = (means[1] - means[0]) / (np.linalg.norm(means[1] - means[0]) + 1e-12)
    along = x @ direction
    cued = np.where(cues == 1, probs[:, DOWN], probs[:, UP])
    fit, test = slice(0, n - HELD_OUT), slice(n - HELD_OUT, n)
    design = np.c_[x, np.ones(n)]
    weights, *_ = np.linalg.lstsq(design[fit], cues[fit] * 2.0 - 1.0, rcond=None)
    return dict(
        cue_share=float(between.sum() / max(total, 1e-12)),
        cue_readable=float(((along[cues == 1].mean() - along[cues == 0].mean()) / 2) ** 2 / max(along.var(), 1e-12)),
        actor=float((cued / (probs[:, UP] + probs[:, DOWN])).mean()),
        readout=float(((design[test] @ weights > 0) == (cues[test] == 1)).mean()),
        output_rms=float(np.sqrt((x**2).mean())),
        # how much of the output's mean square at the junction is the same in every walk
        constant=float((x.mean(0) ** 2).sum() / max((x**2).mean(0).sum(), 1e-12)),
        actor_saturated=saturated,
    )


def task_kwargs(distractors: int | None = None) -> dict:
    """The T-Maze's keywords: the memory suite's task's, with ``distractors`` bits along the corridor if given."""
    kwargs = TASKS[TASK][1]
    return kwargs if distractors is None else dict(kwargs, num_distractors=distractors)


def run(
    model: str,
    seed: int,
    steps: int,
    every: int,
    eval_episodes: int,
    gae_lambda: float | None = None,
    value_lambda: float | None = None,
    distractors: int | None = None,
) -> dict:
    """One training run with its checks; its row (``gae_lambda``: the suite's, 0.95, unless given;
    ``value_lambda``: the critic's targets at another lambda than the advantages, :func:`split_lambdas`;
    ``distractors``: the corridor's distractor bits, the suite's task's unless given)."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    env_id, env_kwargs = TASKS[TASK][0], task_kwargs(distractors)
    base, added = VARIANTS.get(model, (model, {}))
    algo_added = {key: value for key, value in added.items() if key in ALGO_KEYWORDS}
    added = {key: value for key, value in added.items() if key not in ALGO_KEYWORDS}
    algo, policy_name, policy_kwargs = MODELS[base]
    if added.get("activation_fn") == "relu":  # a class, not a string, for SB3 (kept a string above: printable)
        added = dict(added, activation_fn=torch.nn.ReLU)
    policy_kwargs = dict(policy_kwargs, **added)
    if algo != "RtxPPO":
        raise ValueError(f"{model}: this probe runs RtxPPO's models (the policy's latent is read directly)")
    # the memory suite's run: its settings with RtxPPO's default running advantage scale
    algo_kwargs: dict = dict(normalize_advantage="running", **ALGO_CHOICES.get(base, {}), **algo_added)
    if gae_lambda is not None:
        algo_kwargs["gae_lambda"] = gae_lambda
    spec = RunSpec(model, algo, policy_name, policy_kwargs, env_kwargs, seed, steps, eval_episodes,
                   algo_kwargs=algo_kwargs, env_id=env_id)  # fmt: skip
    agent = build_model(spec)
    if value_lambda is not None:
        split_lambdas(agent, value_lambda)
    if model in READ_LAYER_SCALE:
        scale_reads(agent, READ_LAYER_SCALE[model])
    centre = OutputCentre(agent, actor_only=model in ACTOR_CENTRED) if model in (*CENTRED, *ACTOR_CENTRED) else None
    edit_critic(agent, model)
    edit_actor(agent, model)
    if model in LEARNING_RATE_SCALES:
        scale_cell_learning_rate(agent, *LEARNING_RATE_SCALES[model])
    edit_credit(agent, model, seed)
    observations, cues = walks(env_kwargs)
    curve = [dict(steps=0, **junction_measures(agent.policy, observations, cues))]

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_start(self) -> None:
            if centre is not None:
                centre.new_rollout()

        def _on_rollout_end(self) -> None:
            if (self.num_timesteps // (N_ENVS * PPO["n_steps"])) % every == 0:
                curve.append(dict(steps=self.num_timesteps, **junction_measures(agent.policy, observations, cues)))

    start = time.perf_counter()
    agent.learn(steps, callback=Check())
    train_s = round(time.perf_counter() - start, 1)
    success, _ = final_score(agent, env_id, env_kwargs, seed, eval_episodes)  # the memory suite's score
    row = dict(model=model, seed=seed, steps=steps, success=success, curve=curve, train_s=train_s)
    print(
        f"{model:>30} seed {seed}: success {row['success']:.2f}, readable at {first_step(curve, 'cue_readable', READABLE)}, "
        f"used at {first_step(curve, 'actor', USED)}",
        flush=True,
    )
    return row


def first_step(curve: list[dict], measure: str, level: float) -> int | None:
    """The first check's step at which ``measure`` reached ``level`` (None: never)."""
    return next((point["steps"] for point in curve if point[measure] >= level), None)


def thousands(step: int | None) -> str:
    """A step count in thousands for a table (``-``: never)."""
    return "-" if step is None else f"{step / 1000:.0f}k"


def seeds_text(values: Any) -> str:
    return " ".join(format(value, ".2f") for value in values)


def median_at_readable(runs: list[dict], measure: str, form: str) -> str:
    """The median over ``runs`` of ``measure`` at the check where the cue became readable (``-``: in none)."""
    values = []
    for run in runs:
        step = first_step(run["curve"], "cue_readable", READABLE)
        values += [point[measure] for point in run["curve"] if step is not None and point["steps"] == step]
    values = [value for value in values if value == value]  # NaN: not measured (relu heads)
    return form.format(median(values)) if values else "-"


def summary(rows: list[dict], models: list[str]) -> list[dict]:
    """One row per model: each seed's two steps and success, in seed order."""

    table = []
    for model in models:
        runs = sorted((r for r in rows if r["model"] == model), key=lambda r: r["seed"])
        if not runs:
            continue
        solved = sum(r["success"] >= 0.9 for r in runs)
        table.append(
            dict(
                model=model,
                readable=" ".join(thousands(first_step(r["curve"], "cue_readable", READABLE)) for r in runs),
                used=" ".join(thousands(first_step(r["curve"], "actor", USED)) for r in runs),
                start_share=f"{sum(r['curve'][0]['cue_share'] for r in runs) / len(runs):.3f}",
                start_rms=f"{median([r['curve'][0]['output_rms'] for r in runs]):.2f}",
                start_constant=f"{median([r['curve'][0]['constant'] for r in runs]):.2f}",
                readable_rms=median_at_readable(runs, "output_rms", "{:.2f}"),
                readable_saturated=median_at_readable(runs, "actor_saturated", "{:.2f}"),
                success=f"{sum(r['success'] for r in runs) / len(runs):.2f} ({seeds_text(r['success'] for r in runs)})",
                solved=f"{solved} of {len(runs)}",
            )
        )
    return table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=[*MODELS, *VARIANTS], default=DEFAULT_MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--steps", type=int, default=TASKS[TASK][2])
    parser.add_argument("--every", type=int, default=4, help="rollouts between checks")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each)")
    parser.add_argument("--quick", action="store_true", help="smoke run: two models, one seed, 2 rollouts")
    parser.add_argument(
        "--gae-lambda", type=float, default=None, help=f"GAE lambda (default: the suite's, {PPO['gae_lambda']})"
    )
    parser.add_argument(
        "--value-lambda", type=float, default=None, help="the critic's targets at this lambda (default: --gae-lambda's)"
    )
    parser.add_argument(
        "--distractors", type=int, default=None, help="distractor bits along the corridor (default: the suite's task's)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    eval_episodes = EVAL_EPISODES
    if args.quick:
        args.models, args.seeds, args.steps, args.every, eval_episodes = (
            ["AGaLiTe", "LSTM"],
            [0],
            2 * N_ENVS * PPO["n_steps"],
            1,
            8,
        )
    runs = [
        (m, s, args.steps, args.every, eval_episodes, args.gae_lambda, args.value_lambda, args.distractors)
        for m in args.models
        for s in args.seeds
    ]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run, *zip(*runs, strict=True)))
    name = "tmaze_phases_quick" if args.quick else "tmaze_phases"
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{name}_runs.jsonl", "w") as runs_file:
        for row in rows:
            runs_file.write(json.dumps(row) + "\n")
    settings = dict(PPO, normalize_advantage="running")
    if args.gae_lambda is not None:
        settings["gae_lambda"] = args.gae_lambda
    if args.value_lambda is not None:
        settings["value_lambda"] = args.value_lambda  # the critic's targets' (split_lambdas)
    table = write_report(
        summary(rows, args.models),
        args.out,
        name,
        "T-Maze 40: when the cue reaches the output, and when the actor uses it",
        f"Made by `{command_line('benchmarks.probes.tmaze_phases', argv)}`. The memory suite's {TASK} "
        f"({task_kwargs(args.distractors)}), its settings ({N_ENVS} envs, {settings}, heads "
        f"{NET_ARCH}) and cells, {args.steps / 1000:g}k steps; checked every {args.every} rollouts on {WALKS} walks "
        f"straight to the junction. Readable at: the first check at which the cue explains >= {READABLE} of the "
        f"output's variance along the direction that separates the cues; used at: the first check at which the "
        f"actor turns into the cued arm with probability >= {USED} (given a turn); '-': never. Cue share at "
        f"start: the fraction of the fresh cell's output variance at the junction that the cue explains. "
        f"Constant part: the share of the output's mean square at the junction that is the same in every walk. "
        f"Output rms (at the junction) and actor saturated (the fraction of the actor's first-layer tanh units "
        f"beyond {SATURATED} over the walks): at the start, and the median over seeds at the check where the cue "
        f"became readable. "
        f"Success: the final policy, deterministic, {eval_episodes} episodes (the suite's score); solved: seeds "
        f"at >= 0.9. Seeds {', '.join(map(str, args.seeds))}, in order.",
        [
            ("model:", lambda r: r["model"]),
            ("readable at", lambda r: r["readable"]),
            ("used at", lambda r: r["used"]),
            ("cue share at start", lambda r: r["start_share"]),
            ("output rms at start", lambda r: r["start_rms"]),
            ("constant part at start", lambda r: r["start_constant"]),
            ("output rms when readable", lambda r: r["readable_rms"]),
            ("actor saturated when readable", lambda r: r["readable_saturated"]),
            ("success", lambda r: r["success"]),
            ("solved", lambda r: r["solved"]),
        ],
    )
    print(table)
    return rows


if __name__ == "__main__":
    main()
