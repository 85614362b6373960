"""Chunked gated linear attention with outer-product features and a few scalar values per step,
with a hand-written backward that recomputes the wide features instead of storing them.

This is AGaLiTe's key side. Per head, with ``F = A * D`` features (eta * d_head in AGaLiTe) and
``J`` scalar values, and :func:`outer` the flattened outer product (``A``-major)::

    k_t     = outer(k_outer_t, k_inner_t),   q_t = outer(q_outer_t, q_inner_t)           (R^F)
    gamma_t = outer(gate_outer_t, gate_inner_t),   decay_t = max(1 - gamma_t, exp(LOG_DECAY_FLOOR))
    S_t,j   = decay_t * S_{t-1},j + weights_t,j * gamma_t * k_t   (S_{t-1} := 0 before an episode start)
    out_t,j = S_t,j . q_t

Every ``F``-wide tensor is a cheap function of ``A``- and ``D``-wide factors, so nothing
``F``-wide needs to outlive its chunk: the forward walks over chunks of ``CHUNK_LEN`` steps
(inside a chunk, the gated attention form of :class:`~sb3_rtx.cells.scan.GatedChunks`, as matrix
products), and the backward walks back over them, rebuilding each chunk's features from the
factors. Only the ``J x F`` state at chunk boundaries is saved, besides the factors themselves
(which the caller's graph holds anyway). Three things make this fast on a CPU: chunks are handled
in groups whose wide tensors (1 MB each, :data:`GROUP_ELEMENTS`: one chunk of the paper's size at
T=128, B=16; several small chunks merged, a large one split by env-heads) stay in cache, where an
element-wise pass is several times faster than over the whole sequence (17 MB per tensor); the
decay products are running products (:func:`running_product`), not ``exp`` of running sums of
logs, so neither direction calls a transcendental function on the wide tensors; and the decay's
floor is clamped, and masked in backward, only in a call whose gates can reach it
(:func:`reaches_floor`). The idea of recomputing in backward rather than storing is the one of
FlashAttention (Dao et al. 2022) and of the chunked gated linear attention kernels of Yang et al.
2024.

Gradient (per chunk; ``c_t`` the running sum of log-decays, ``P = exp(c)``, ``m`` the chunk's
middle step, ``w = gamma * k``, ``Q~ = q * P / P_m``, ``K~ = w * P_m / P``, ``G = mask * (dout @ weights^T)``)::

    dQ~ = G @ K~ + reads * dout @ (P_m * S)^T        dK~ = G^T @ Q~ + writes * weights @ (P_last / P_m * dS')
    dc  = Q~ * dQ~ - K~ * dK~  (+ sum_j dS' * S' at the last step)
    dlog_decay_u = sum_{t >= u} dc_t,   dS = keeps * P_last * dS' + P_m * (reads * dout)^T @ Q~

(the middle step ``m`` only rescales ``Q~`` and ``K~`` against each other, so it carries no
gradient of its own).
"""

from __future__ import annotations


import torch
from torch.autograd.function import once_differentiable

from sb3_rtx.cells.compiled_key_side import compiled_group_backward, compiled_group_forward
from sb3_rtx.cells.scan import CHUNK_LEN, DECAY_FLOOR, GatedChunks, doubling_scan, launch_bound


def outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``flatten(a outer b)`` over the last dim: ``(..., A), (..., D) -> (..., A * D)``, index ``i * D + j``."""
    return (a.unsqueeze(-1) * b.unsqueeze(-2)).flatten(-2)


def factored_gated_attention(
    k_outer: torch.Tensor,
    k_inner: torch.Tensor,
    q_outer: torch.Tensor,
    q_inner: torch.Tensor,
    gate_outer: torch.Tensor,
    gate_inner: torch.Tensor,
    weights: torch.Tensor,
    starts: torch.Tensor,
    state: torch.Tensor,
    chunk_len: int = CHUNK_LEN,
    compiled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs and final state of the recurrence in the module docstring, for a whole sequence.

    :param k_outer, q_outer, gate_outer: ``(T, B, H, A)``
    :param k_inner, q_inner, gate_inner: ``(T, B, H, D)``; the gates in [0, 1]
    :param weights: ``(T, B, J)`` values written with ``gamma_t * k_t`` (no gradient is computed for them)
    :param starts: ``(T, B)`` episode starts (0/1)
    :param state: ``(B, H, J, A * D)`` state before the first step
    :param chunk_len: steps per chunk (see :data:`~sb3_rtx.cells.scan.LOG_DECAY_FLOOR` before raising it)
    :param compiled: each group's whole work (features, products, the carry between its chunks) as
        the fused kernels of :mod:`~sb3_rtx.cells.compiled_key_side` (``torch.compile``) instead of
        eager passes
    :return: ``out (T, B, H, J)`` and the final state ``(B, H, J, A * D)``
    """
    return _FactoredGatedAttention.apply(
        k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner, weights, starts, state, chunk_len, compiled
    )


def factored_gated_attention_sequential(k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner, weights, starts, state):
    """Reference form: the recurrence step by step with plain autograd (what the tests compare with)."""
    outputs = []
    for t in range(k_outer.shape[0]):
        keep = (1.0 - starts[t]).view(-1, 1, 1, 1)
        gamma = outer(gate_outer[t], gate_inner[t])
        decay = (1.0 - gamma).clamp_min(DECAY_FLOOR).unsqueeze(2)
        written = gamma * outer(k_outer[t], k_inner[t])
        state = decay * keep * state + weights[t][:, None, :, None] * written.unsqueeze(2)
        outputs.append(torch.einsum("bhjf,bhf->bhj", state, outer(q_outer[t], q_inner[t])))
    return torch.stack(outputs), state


class _ChunkLayout:
    """``(T, B, H, X)`` <-> ``(n_chunks, B * H, L, X)``: one matrix per (env, head) and chunk, so
    every product inside the chunk loop is a plain ``bmm`` on contiguous memory."""

    def __init__(self, chunks: GatedChunks, batch: int, heads: int) -> None:
        self.chunks, self.batch, self.heads = chunks, batch, heads
        self.n, self.length = chunks.n_chunks, chunks.chunk_len

    def to_chunks(self, x: torch.Tensor) -> torch.Tensor:
        x = self.chunks.chunk(x, 0.0)  # (n, L, B, H, X); padding 0 = no write, no read, decay 1
        return x.permute(0, 2, 3, 1, 4).reshape(self.n, self.batch * self.heads, self.length, x.shape[-1])

    def from_chunks(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(self.n, self.batch, self.heads, self.length, x.shape[-1]).permute(0, 3, 1, 2, 4)
        return self.chunks.unchunk(x)

    def new_with_chunk_view(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An uninitialised ``(T, B, H, X)`` tensor (``X`` as ``like``'s) and a view of it in the chunk
        layout, which the backward writes each group's gradient into (no copy back afterwards)."""
        full = like.new_empty((self.n * self.length, self.batch, self.heads, like.shape[-1]))
        chunked = full.view(self.n, self.length, self.batch * self.heads, -1).permute(0, 2, 1, 3)
        return full[: self.chunks.seq_len], chunked

    def per_env(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, L, B, X)`` (per env, not per head) -> ``(n, B * H, L, X)``."""
        x = x.permute(0, 2, 1, 3).unsqueeze(2).expand(self.n, self.batch, self.heads, self.length, x.shape[-1])
        return x.reshape(self.n, self.batch * self.heads, self.length, x.shape[-1])


def reaches_floor(gate_outer: torch.Tensor, gate_inner: torch.Tensor) -> bool:
    """Whether any ``1 - gamma`` may fall to the decay floor (a gate within ``2 * floor`` of 1). Almost
    never, so the common case skips the clamp and, in backward, the mask of where it held; the
    check costs a max over the small factors (gates are in [0, 1], so the largest product is the
    product of the largest factors)."""
    largest = gate_outer.amax(-1) * gate_inner.amax(-1)
    return bool((largest > 1.0 - 2 * DECAY_FLOOR).any())


def running_product(x: torch.Tensor) -> torch.Tensor:
    """``cumprod`` along dim 1 of ``(N, L, F)``; on a CPU as ``L - 1`` products of whole steps: with a
    short ``L`` and a long ``F`` about 4x faster than ``torch.cumprod``, which walks each of the
    ``N * F`` columns on its own (on an accelerator, one ``cumprod`` kernel beats ``L - 1`` launches)."""
    if launch_bound(x.device):
        return x.cumprod(1)
    out = torch.empty_like(x)
    out[:, 0] = x[:, 0]
    for i in range(1, x.shape[1]):
        torch.mul(x[:, i], out[:, i - 1], out=out[:, i])
    return out


def reverse_running_sum(x: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``sum_{t >= u} x_t`` along dim 1 of ``(N, L, F)``. On a CPU in place, as ``L - 1`` adds of whole
    steps (a short ``L``: about half the time of the ``(L, L)`` matmul, and no new wide tensor); on an
    accelerator one matmul with ``upper`` (``upper[u, t] = 1`` for ``t >= u``) instead of ``L - 1`` launches."""
    if launch_bound(x.device):
        return torch.matmul(upper, x)
    for i in range(x.shape[1] - 2, -1, -1):
        x[:, i].add_(x[:, i + 1])
    return x


class _ChunkFeatures:
    """The wide tensors ``(G * B * H, L, F)`` of a group of ``G`` chunks, rebuilt from their factors."""

    def __init__(self, factors: tuple[torch.Tensor, ...], middle: int, floored: bool) -> None:
        k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner = factors
        # decay = max(1 - gamma, floor), in place (decay > floor exactly where the floor is not hit)
        self.decay = outer(gate_outer.neg(), gate_inner).add_(1.0)
        if floored:
            self.decay.clamp_min_(DECAY_FLOOR)
        # gamma * k is itself an outer product, of the factors' products
        self.write_outer, self.write_inner = gate_outer * k_outer, gate_inner * k_inner
        running = running_product(self.decay)  # P_t = prod_{u <= t} decay_u, >= floor ** L (no underflow at L = 8)
        self.at_middle = running[:, middle : middle + 1].clone()
        self.at_last = running[:, -1:].clone()
        self.inflate = running.div_(self.at_middle)  # P_t / P_m, in (floor ** (L/2), floor ** -(L/2))
        self.queries = outer(q_outer, q_inner).mul_(self.inflate)  # Q~ = q P_t / P_m
        self.keys = outer(self.write_outer, self.write_inner).div_(self.inflate)  # K~ = w P_m / P_s


def _eager_factor_gradients(
    chunk: _ChunkFeatures,
    factors: tuple[torch.Tensor, ...],
    d_queries: torch.Tensor,
    d_keys: torch.Tensor,
    d_last: torch.Tensor,
    floored: bool,
    upper: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """The six factors' gradients from those of ``Q~``, ``K~`` and the last step's log running
    product, with ``chunk``'s wide tensors used up (and freed) on the way; ``d_queries`` and ``d_keys``
    are overwritten."""
    # the wide tensors are freed as soon as they are used up, and d_running is written over
    # the queries: a group's temporaries are most of the backward's peak
    d_running = chunk.queries.mul_(d_queries).addcmul_(chunk.keys, d_keys, value=-1.0)
    d_running[:, -1:].add_(d_last)  # c_last is a sum over every step of the chunk
    del chunk.queries, chunk.keys
    d_log_decay = reverse_running_sum(d_running, upper)
    del d_running
    d_decay = d_log_decay.div_(chunk.decay)
    if floored:  # no gradient where the floor holds the decay
        d_decay = torch.where(chunk.decay > DECAY_FLOOR, d_decay, 0.0)
    del chunk.decay
    k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner = factors
    d_write_outer, d_write_inner = _outer_grads(d_keys.div_(chunk.inflate), chunk.write_outer, chunk.write_inner)
    d_gate_outer, d_gate_inner = _outer_grads(d_decay, gate_outer, gate_inner)  # d(1 - gamma) = -d gamma
    return (
        d_write_outer * gate_outer,
        d_write_inner * gate_inner,
        *_outer_grads(d_queries.mul_(chunk.inflate), q_outer, q_inner),
        torch.addcmul(d_gate_outer.neg_(), d_write_outer, k_outer),
        torch.addcmul(d_gate_inner.neg_(), d_write_inner, k_inner),
    )


def _outer_grads(grad: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``a (N, L, A)`` and ``b (N, L, D)`` from the gradient ``(N, L, A * D)`` of ``outer(a, b)``
    (the forms measured fastest for a short ``A`` and a long, contiguous ``D``)."""
    if grad.stride(0) < grad.stride(1):
        # laid out step-major, as the factors' group views and what is built from them (the decay's
        # gradient is written over the queries): flattened (L, N) is a view, where (N, L) would copy
        # the wide gradient (1 MB a group at the paper's size, at the step's peak). Each element's
        # sum and product are the same either way, so the bits are too
        grad_a, grad_b = _outer_grads(grad.transpose(0, 1), a.transpose(0, 1), b.transpose(0, 1))
        return grad_a.transpose(0, 1), grad_b.transpose(0, 1)
    grid = grad.reshape(-1, a.shape[-1], b.shape[-1])  # (N L, A, D)
    # both as products of a row with the grid: b^T grid^T, not grid b (a batched matrix-vector
    # product, which ran ~7x slower) nor a product and a sum over D (~3x slower, and a wide temporary)
    grad_a = torch.bmm(b.reshape(-1, 1, b.shape[-1]), grid.transpose(1, 2)).view_as(a)
    grad_b = torch.bmm(a.reshape(-1, 1, a.shape[-1]), grid).view_as(b)
    return grad_a, grad_b


#: elements of the wide tensors handled per group: large enough that per-op overhead is small, small
#: enough that a group's wide tensors stay in a CPU's cache (1 MB each in float32; chosen by
#: measuring the paper-size and small cells' training step, 1 thread)
GROUP_ELEMENTS = 1 << 18
#: the same on an accelerator, where there is no such cache to fit and every op is a kernel launch:
#: the whole sequence at once at the sizes the benchmarks use (64 MB per wide tensor)
ACCELERATOR_GROUP_ELEMENTS = 1 << 24


class _Group:
    """Chunks ``first:end`` and rows (env-heads) ``rows`` of the chunk layout, processed together: whole
    chunks merged while they are small, one chunk split by rows when it is large (rows never interact)."""

    def __init__(self, first: int, end: int, rows: slice) -> None:
        self.first, self.end, self.rows, self.size = first, end, rows, end - first

    def __call__(self, x: torch.Tensor, shift: int = 0) -> torch.Tensor:
        """The group's part of ``(n, BH, ...)`` as one batch ``(chunks * rows, ...)`` (a view);
        ``shift`` moves it ``shift`` chunks on (the boundaries after each chunk)."""
        return x[self.first + shift : self.end + shift, self.rows].flatten(0, 1)


def _groups(layout: _ChunkLayout, width: int, device: torch.device) -> list[_Group]:
    """The groups in an order that carries state forward: row blocks, each over its chunks in time."""
    budget = ACCELERATOR_GROUP_ELEMENTS if launch_bound(device) else GROUP_ELEMENTS
    rows = layout.batch * layout.heads
    per_row = layout.length * width
    per_chunk = rows * per_row
    if per_chunk <= budget:
        size = budget // per_chunk
        return [_Group(first, min(first + size, layout.n), slice(None)) for first in range(0, layout.n, size)]
    block = max(1, budget // per_row)
    return [_Group(c, c + 1, slice(r, min(r + block, rows))) for r in range(0, rows, block) for c in range(layout.n)]


class _FactoredGatedAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner, weights, starts, state, chunk_len, compiled):
        _, batch, heads, _ = k_outer.shape
        chunks = GatedChunks(starts, chunk_len)
        layout = _ChunkLayout(chunks, batch, heads)
        floored = ctx.floored = reaches_floor(gate_outer, gate_inner)
        factors = tuple(layout.to_chunks(x) for x in (k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner))
        masks = _ChunkMasks(chunks, layout, layout.per_env(chunks.chunk(weights, 0.0)))
        n_values, width = state.shape[-2], state.shape[-1]
        rows = batch * heads
        # the state at every chunk boundary (0 = the incoming state, n = the final one)
        boundaries = state.new_empty((layout.n + 1, rows, n_values, width))
        boundaries[0] = state.reshape(rows, n_values, width)
        out = state.new_empty((layout.n, rows, layout.length, n_values))
        zero = torch.zeros((), dtype=state.dtype, device=state.device)
        for group in _groups(layout, width, state.device):
            keeps = masks.keeps[group.first : group.end, group.rows]
            if compiled:  # the group's whole work, carry included, as one fused kernel
                group_out, after = compiled_group_forward(
                    tuple(group(f) for f in factors),
                    *(group(m) for m in (masks.weights, masks.pairs, masks.reads, masks.written)),
                    keeps,
                    boundaries[group.first, group.rows],
                    floored,
                )
                group(out).copy_(group_out)
                boundaries[group.first + 1 : group.end + 1, group.rows] = after
                continue
            chunk = _ChunkFeatures(tuple(group(f) for f in factors), layout.length // 2, floored)
            # what each chunk adds to the state by its end, over P_last: sum_s writes_s weights_s K~_s / P_m
            written = torch.bmm(group(masks.written).transpose(1, 2), chunk.keys).div_(chunk.at_middle)
            written, at_last = written.view(group.size, -1, n_values, width), chunk.at_last.view(group.size, -1, 1, width)
            # carry the state across the group's chunks: B_c+1 = P_last (keeps B_c + written)
            if launch_bound(state.device):  # as one scan: fewer ops than a step per chunk
                carried = doubling_scan(keeps * at_last, written.mul_(at_last), boundaries[group.first, group.rows])
                boundaries[group.first + 1 : group.end + 1, group.rows] = carried
            else:
                for offset, index in enumerate(range(group.first, group.end)):
                    after = boundaries[index + 1, group.rows]
                    torch.addcmul(written[offset], masks.keeps[index, group.rows], boundaries[index, group.rows], out=after)
                    after.mul_(at_last[offset])
            # within each chunk: masked gated attention (entries outside the mask may hold huge values)
            scores = torch.where(group(masks.pairs), torch.bmm(chunk.queries, chunk.keys.transpose(1, 2)), zero)
            # plus the carried state, read by steps before the chunk's first episode start
            read = torch.bmm(chunk.queries, (chunk.at_middle * group(boundaries)).transpose(1, 2))
            torch.addcmul(torch.bmm(scores, group(masks.weights)), group(masks.reads), read, out=group(out))
            # free this group's wide tensors before the next group builds its own (else both are live)
            del chunk, written, at_last, scores, read
        # the caller's graph keeps the factors alive anyway: saving them costs nothing, unlike the
        # chunk-layout copies (rebuilt in backward)
        ctx.save_for_backward(k_outer, k_inner, q_outer, q_inner, gate_outer, gate_inner, boundaries)
        ctx.layout, ctx.masks, ctx.compiled = layout, masks, compiled
        return layout.from_chunks(out), boundaries[-1].view_as(state).clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor, grad_final: torch.Tensor | None):
        *inputs, boundaries = ctx.saved_tensors
        layout: _ChunkLayout = ctx.layout
        factors = tuple(layout.to_chunks(x) for x in inputs)
        masks: _ChunkMasks = ctx.masks
        floored: bool = ctx.floored
        compiled: bool = ctx.compiled
        _, rows, n_values, width = boundaries.shape
        grad_out = layout.to_chunks(grad_out)  # (n, BH, L, J)
        # updated in place, row block by row block: never the caller's gradient buffer
        grad_state = (
            boundaries.new_zeros(boundaries.shape[1:])
            if grad_final is None
            else grad_final.reshape(rows, n_values, width).clone()
        )
        # each factor's gradient in its own layout, written through a chunk-layout view of it
        factor_grads = [layout.new_with_chunk_view(f) for f in factors]
        length = layout.length
        # sum over t >= u as one small matmul: upper[u, t] = 1 for t >= u
        upper = torch.ones(length, length, dtype=boundaries.dtype, device=boundaries.device).triu()
        for group in reversed(_groups(layout, width, boundaries.device)):
            group_factors = tuple(group(f) for f in factors)
            d_out = group(grad_out)
            if compiled:  # the group's whole backward, carry included, as one fused kernel
                *grads, grad_state[group.rows] = compiled_group_backward(
                    group_factors,
                    *(group(m) for m in (masks.weights, masks.pair_weights, masks.reads, masks.written)),
                    masks.keeps[group.first : group.end, group.rows],
                    boundaries[group.first : group.end, group.rows],
                    boundaries[group.first + 1 : group.end + 1, group.rows],
                    d_out,
                    grad_state[group.rows],
                    floored,
                )
                for (_, chunked), grad in zip(factor_grads, grads, strict=True):
                    chunked[group.first : group.end, group.rows].copy_(grad.view(group.size, -1, length, grad.shape[-1]))
                del grads
                continue
            chunk = _ChunkFeatures(group_factors, length // 2, floored)
            gate = torch.bmm(d_out, group(masks.weights).transpose(1, 2)).mul_(group(masks.pair_weights))
            d_read = d_out * group(masks.reads)
            before = chunk.at_middle * group(boundaries)
            d_queries = torch.bmm(gate, chunk.keys).baddbmm_(d_read, before)
            del before
            # the gradient at each chunk's end, carried back across the group's chunks
            read_back = (
                torch.bmm(d_read.transpose(1, 2), chunk.queries).mul_(chunk.at_middle).view(group.size, -1, n_values, width)
            )
            keep_last = chunk.at_last.view(group.size, -1, 1, width)
            if launch_bound(boundaries.device):  # G_c = read_back_c + keeps P_last G_c+1 as one reverse scan
                carried = grad_state[group.rows]
                keeps = masks.keeps[group.first : group.end, group.rows]
                at_starts = doubling_scan(keeps * keep_last, read_back, carried, reverse=True)
                d_end = torch.cat([at_starts[1:], carried.unsqueeze(0)])
                grad_state[group.rows] = at_starts[0]
            else:
                d_end = boundaries.new_empty(read_back.shape)
                for offset in reversed(range(group.size)):
                    carried = grad_state[group.rows]
                    d_end[offset] = carried
                    keeps = masks.keeps[group.first + offset, group.rows]
                    grad_state[group.rows] = torch.addcmul(read_back[offset], keeps * keep_last[offset], carried)
            # the state-sized temporaries are freed as soon as they are used up, d_end multiplied in
            # place, and d_last taken before d_keys is allocated: this stretch held the paper-size
            # step's peak (d_read and gate, a few KiB, live to the group's end)
            del read_back
            d_end = d_end.flatten(0, 1)
            d_written = d_end * (chunk.at_last / chunk.at_middle)
            # d/dc_last of the chunk-end state, which is proportional to P_last
            d_last = d_end.mul_(group(boundaries, shift=1)).sum(1, keepdim=True)
            del d_end
            d_keys = torch.bmm(gate.transpose(1, 2), chunk.queries).baddbmm_(group(masks.written), d_written)
            del d_written
            grads = _eager_factor_gradients(chunk, group_factors, d_queries, d_keys, d_last, floored, upper)
            for (_, chunked), grad in zip(factor_grads, grads, strict=True):
                chunked[group.first : group.end, group.rows].copy_(grad.view(group.size, -1, length, grad.shape[-1]))
            # free this group's wide tensors before the next group rebuilds its own (else both are live:
            # at the small size that doubled the step's peak over what backward keeps)
            del chunk, gate, d_read, d_queries, d_keys, d_last, grads
        needs = ctx.needs_input_grad
        grads_in = [full if needs[i] else None for i, (full, _) in enumerate(factor_grads)]
        grad_initial = grad_state.view(layout.batch, layout.heads, n_values, width) if needs[8] else None
        return (*grads_in, None, None, grad_initial, None, None)


class _ChunkMasks:
    """Episode-start masks and value weights in the chunk layout ``(n, B * H, L, .)``."""

    def __init__(self, chunks: GatedChunks, layout: _ChunkLayout, weights: torch.Tensor) -> None:
        n, batch, heads = layout.n, layout.batch, layout.heads
        dtype = weights.dtype

        def per_head(x: torch.Tensor) -> torch.Tensor:  # (n, B, ...) -> (n, B * H, ...)
            return x.unsqueeze(2).expand(n, batch, heads, *x.shape[2:]).reshape(n, batch * heads, *x.shape[2:])

        self.weights = weights  # (n, BH, L, J)
        self.pairs = per_head(chunks.pair_mask[:, :, 0])  # (n, BH, L, L) bool: step t may read input s
        self.pair_weights = self.pairs.to(dtype)
        self.reads = per_head(chunks.reads_carry[..., 0, 0].transpose(1, 2)).unsqueeze(-1).to(dtype)  # (n, BH, L, 1)
        writes = per_head(chunks.writes_carry[..., 0, 0].transpose(1, 2)).unsqueeze(-1).to(dtype)
        self.written = weights * writes  # (n, BH, L, J): weights of inputs that survive to the chunk end
        self.keeps = per_head(chunks.keeps_carry[..., 0, 0]).view(n, batch * heads, 1, 1).to(dtype)
