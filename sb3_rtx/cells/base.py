"""The interface every recurrent cell implements, and the input checks they share.

A cell maps a sequence ``x: (T, B, input_dim)`` and a per-env state to ``y: (T, B, output_dim)``
and a new state. ``episode_starts[t, b]`` resets env ``b`` to the initial state *before* step ``t``.
``T == 1`` is the acting path; ``T > 1`` is the training path.

Nothing here knows about Stable-Baselines3: the policy layer adapts cells to SB3.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from numbers import Integral, Real
from typing import Any
from collections.abc import Callable, Sequence

import torch
from torch import nn

#: A cell's recurrent state: a tuple of tensors, batch dimension first.
CellState = tuple[torch.Tensor, ...]


class RecurrentCell(nn.Module, ABC):
    """Base class of all sequence cells (GaLiTe, AGaLiTe, GTrXL, LSTM).

    Subclasses implement :meth:`state_shapes` (the shape of each state tensor for one env) and
    :meth:`_forward` (the computation on already validated inputs). The base class owns input
    validation so every cell fails the same, clear way on bad input.
    """

    #: registry name of the cell ("galite", ...), set by subclasses
    name: str = ""
    #: the compiled acting step (see :meth:`compile_acting`), None while acting is eager; a class
    #: default, so cells unpickled from before it existed have it too
    _compiled_step: Callable[..., Any] | None = None
    #: whether the training form's element-wise kernels run through ``torch.compile`` (see
    #: :meth:`compile_training`); a class default, so cells unpickled from before it existed have it too
    _training_compiled: bool = False
    #: whether the cell's training form has compiled kernels (:meth:`compile_training`)
    has_compiled_training: bool = False

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)

    # ------------------------------------------------------------ compilation
    def compile_acting(self, enabled: bool = True) -> RecurrentCell:
        """Run the acting step (``T == 1`` without gradients) through ``torch.compile``.

        At batch 1 the eager step is a few hundred small ops and costs their dispatch, not their
        arithmetic; compiled (inductor, with its C++ wrapper on CPU) it is a handful of fused
        kernels, several times faster (see the docs, "Benchmarks"). The first step at each new batch
        size compiles, which takes seconds to tens of seconds and needs a C++ compiler on CPU;
        if compiling fails, a warning says why and acting stays eager. Training (``T > 1`` or
        gradients on) is unaffected (see :meth:`compile_training`). Returns ``self``.
        """
        self._compiled_step = torch.compile(self._forward, dynamic=False, options={"cpp_wrapper": True}) if enabled else None
        return self

    def compile_training(self, enabled: bool = True) -> RecurrentCell:
        """Run the training form's chunk work through ``torch.compile`` (AGaLiTe: the key side's,
        :mod:`~sb3_rtx.cells.compiled_key_side`, the value side's, :mod:`~sb3_rtx.cells.compiled_values`,
        and the value convolution's, :mod:`~sb3_rtx.cells.compiled_convolution`).

        On a CPU that work is a few dozen passes over wide tensors per chunk; compiled it is one
        fused kernel per group of chunks (or block of steps) and direction, the carry from chunk to
        chunk included, and AGaLiTe's training step is faster (see the docs,
        "Benchmarks"). The first training call compiles, which takes tens of seconds and needs a
        C++ compiler on CPU (inductor caches the kernels on disk for later processes); if compiling
        fails, a warning says why and training runs eagerly (calling this method again tries
        again). Acting is unaffected (see :meth:`compile_acting`). Returns ``self``.

        :raises ValueError: for a cell without compiled training kernels (only AGaLiTe has them)
        """
        if enabled and not self.has_compiled_training:
            raise ValueError(
                f"{type(self).__name__} has no compiled training form: compile_training is for AGaLiTe "
                "(its key and value sides); this cell trains eagerly"
            )
        if enabled:
            from sb3_rtx.cells.compiled_kernels import retry_compiling  # (it imports this module)

            retry_compiling()
        self._training_compiled = bool(enabled)
        return self

    @property
    def training_compiled(self) -> bool:
        """Whether :meth:`compile_training` is on and its kernels compiled (no failure fell back to eager)."""
        from sb3_rtx.cells.compiled_kernels import compiling_failed

        return self._training_compiled and not compiling_failed()

    @property
    def acting_compiled(self) -> bool:
        """Whether :meth:`compile_acting` is on."""
        return self._compiled_step is not None

    def __getstate__(self) -> dict:
        # a compiled function does not pickle (deepcopy, torch.save of the module): drop it there
        state = super().__getstate__()
        state["_compiled_step"] = None
        return state

    # ------------------------------------------------------------------ input statistics
    @property
    def has_input_statistics(self) -> bool:
        """Whether the cell keeps running statistics of its input (``memory_input="standardised"`` or ``"scaled"``)
        that whoever trains it updates with :meth:`update_input_statistics`."""
        return False

    def update_input_statistics(self, inputs: torch.Tensor) -> None:
        """Merge ``inputs`` (any shape ending in ``input_dim``) into the cell's running input
        statistics; nothing for a cell without them. Never called by ``forward``: a trainer calls it
        between updates (RtxPPO: once per rollout, after the update), so that the forward pass is
        the same in acting and in training."""

    # ------------------------------------------------------------------ state
    def recorded_choices(self) -> dict[str, Any]:
        """The keywords of every choice the cell resolved from its variant, as a saved model records
        them (none for cells without variants)."""
        return {}

    @abstractmethod
    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shape of each state tensor for a single env (the batch dimension is prepended)."""

    @property
    def state_numel(self) -> int:
        """Number of state values carried per env (what a rollout buffer must store)."""
        total = 0
        for shape in self.state_shapes():
            n = 1
            for size in shape:
                n *= size
            total += n
        return total

    def _param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _param_device(self) -> torch.device:
        return next(self.parameters()).device

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> CellState:
        """The state of ``batch_size`` envs at the start of an episode (all zeros for every cell)."""
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        device = self._param_device() if device is None else torch.device(device)
        dtype = self._param_dtype()
        return tuple(torch.zeros((batch_size, *shape), device=device, dtype=dtype) for shape in self.state_shapes())

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        x: torch.Tensor,
        state: Sequence[torch.Tensor] | None,
        episode_starts: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, CellState]:
        """Run the cell over a sequence.

        :param x: inputs, shape ``(T, B, input_dim)``
        :param state: the state before step 0 (from :meth:`initial_state` or a previous call); ``None``
            means every env starts fresh
        :param episode_starts: ``(T, B)`` bool or float; where set, the env's state is reset to the
            initial state before that step. ``None`` means no resets.
        :return: ``(y, new_state)`` with ``y`` of shape ``(T, B, output_dim)``
        """
        x, state, starts = self._check_inputs(x, state, episode_starts)
        if self._compiled_step is not None and x.shape[0] == 1 and not torch.is_grad_enabled():
            return self._compiled_acting_step(x, state, starts)
        return self._forward(x, state, starts)

    def _compiled_acting_step(self, x: torch.Tensor, state: CellState, starts: torch.Tensor) -> tuple[torch.Tensor, CellState]:
        compiled = self._compiled_step
        assert compiled is not None, "called only when compile_acting is on"
        try:
            return compiled(x, state, starts)
        except Exception as error:  # compiling failed (no C++ compiler, unsupported backend, ...)
            if not is_compile_failure(error):
                raise
            warnings.warn(
                f"{type(self).__name__}.compile_acting: torch.compile failed ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}); acting runs eagerly",
                RuntimeWarning,
                stacklevel=3,
            )
            self._compiled_step = None
            return self._forward(x, state, starts)

    @abstractmethod
    def _forward(self, x: torch.Tensor, state: CellState, starts: torch.Tensor) -> tuple[torch.Tensor, CellState]:
        """Cell computation; ``starts`` is a ``(T, B)`` tensor of 0/1 in ``x``'s dtype."""

    # ----------------------------------------------------------------- checks
    def _check_inputs(
        self,
        x: torch.Tensor,
        state: Sequence[torch.Tensor] | None,
        episode_starts: torch.Tensor | None,
    ) -> tuple[torch.Tensor, CellState, torch.Tensor]:
        cell = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{cell}: x must be a torch.Tensor of shape (T, B, {self.input_dim}), got {type(x).__name__}")
        if x.dim() != 3:
            raise ValueError(
                f"{cell}: x must have shape (T, B, input_dim={self.input_dim}), "
                f"got a {x.dim()}-d tensor of shape {tuple(x.shape)}"
            )
        seq_len, batch, features = x.shape
        if features != self.input_dim:
            raise ValueError(
                f"{cell}: wrong input dimension: x has {features} features per step, this cell was built "
                f"with input_dim={self.input_dim} (x shape {tuple(x.shape)})"
            )
        if seq_len == 0 or batch == 0:
            raise ValueError(f"{cell}: x must have at least one step and one env, got shape {tuple(x.shape)}")

        if episode_starts is None:
            starts = x.new_zeros((seq_len, batch))
        else:
            if not isinstance(episode_starts, torch.Tensor):
                episode_starts = torch.as_tensor(episode_starts)
            if tuple(episode_starts.shape) != (seq_len, batch):
                raise ValueError(
                    f"{cell}: episode_starts must have shape (T, B) = ({seq_len}, {batch}) to match x, "
                    f"got {tuple(episode_starts.shape)}"
                )
            starts = episode_starts.to(device=x.device, dtype=x.dtype)

        if state is None:
            state = self.initial_state(batch, device=x.device)
        else:
            state = tuple(state)
            expected = self.state_shapes()
            if len(state) != len(expected):
                raise ValueError(
                    f"{cell}: state has {len(state)} tensors, this cell's state has {len(expected)}: "
                    "is it a state from another cell?"
                )
            for i, (tensor, shape) in enumerate(zip(state, expected, strict=True)):
                want = (batch, *shape)
                if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != want:
                    got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                    raise ValueError(
                        f"{cell}: state tensor {i} has shape {got}, expected {want} for a batch of {batch}: "
                        "is it a state from a cell of another size, or for another number of envs?"
                    )
        return x, state, starts

    def extra_repr(self) -> str:
        return f"input_dim={self.input_dim}, output_dim={self.output_dim}, state_numel={self.state_numel}"


def is_compile_failure(error: Exception) -> bool:
    """Whether ``error`` comes from torch.compile's machinery rather than from the computation."""
    module = type(error).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor", "torch._subclasses")) or isinstance(
        error, (OSError, ImportError)
    )


def check_positive_int(cell: str, **values: object) -> None:
    """Raise a clear error when a size hyperparameter is not a positive int."""
    for key, value in values.items():
        # numbers.Integral: SB3 reports some feature sizes as numpy ints
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{cell}: {key} must be a positive int, got {value!r}")


def check_positive_number(owner: str, zero_allowed: bool = False, **values: object) -> None:
    """Raise a clear error when a scale is not a finite number > 0 (>= 0 with ``zero_allowed``;
    bools refused)."""
    for key, value in values.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, Real)
            or not 0 <= float(value) < math.inf
            or (value == 0 and not zero_allowed)
        ):
            raise ValueError(f"{owner}: {key} must be a finite number {'>=' if zero_allowed else '>'} 0, got {value!r}")
