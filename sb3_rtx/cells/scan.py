"""Gated (element-wise) linear recurrences with episode resets.

Every linear cell in this package is built from the recurrence

    h_t = a_t * h_{t-1} + b_t            (element-wise, t = 0 .. T-1, h_{-1} = h0)

where ``a_t`` is a decay in [0, 1] and a reset before step ``t`` is expressed by ``a_t = 0`` (every
cell's initial state is zero). This module gives three forms of it:

* :func:`linear_step` - one step, the acting path;
* :func:`linear_scan_sequential` - a plain loop over time, the reference the tests compare with;
* :func:`linear_scan` - the training path: a two-level chunked scan that needs about ``2*sqrt(T)``
  vectorised steps instead of ``T``, with a hand-written backward (the same scan run backwards in
  time) so autograd keeps only the outputs, not every intermediate.

and :class:`GatedChunks`, the bookkeeping of the chunked gated-attention form that GaLiTe and
AGaLiTe use for their large key-side states (too large to materialise at every step).

Nothing here knows about cells or SB3.
"""

from __future__ import annotations

import math

import torch


def launch_bound(device: torch.device) -> bool:
    """Whether an op on ``device`` costs its launch more than its work at the sizes RL trains at
    (every accelerator; on an H200 the training step waited on the host issuing kernels): the
    training forms then take the paths with the fewest ops, where a CPU's take the cache-sized ones.
    One function, so the tests can run the accelerators' paths on a CPU."""
    return device.type != "cpu"


def linear_step(a: torch.Tensor, b: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One step of ``h = a * h + b``."""
    return torch.addcmul(b, a, h)


def linear_scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Reference form: a Python loop over time. Returns every ``h_t``, shape ``(T, *b.shape[1:])``."""
    out = []
    h = h0
    for t in range(b.shape[0]):
        h = linear_step(a[t], b[t], h)
        out.append(h)
    return torch.stack(out)


def default_chunk_len(seq_len: int) -> int:
    """Chunk length that balances the two levels of :func:`linear_scan` (about sqrt(T)): the largest
    divisor of ``T`` in ``[sqrt(T) / 2, 2 sqrt(T)]`` where there is one (no padding to copy: 16 at
    T = 128), else ``ceil(sqrt(T))``."""
    root = math.sqrt(seq_len)
    divisors = [n for n in range(max(1, math.ceil(root / 2)), math.floor(2 * root) + 1) if seq_len % n == 0]
    return divisors[-1] if divisors else max(1, math.ceil(root))


def chunked_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_len: int, reverse: bool = False, overwrite: bool = False
) -> torch.Tensor:
    """Two-level scan without autograd; returns ``(T, *b.shape[1:])``. With ``overwrite`` the states are
    written over ``b`` (a contiguous tensor the caller owns and no longer needs) where ``T`` is a
    multiple of ``chunk_len``, saving a buffer of ``b``'s size.

    Forward in time ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = h0``); with ``reverse``, backward in time
    ``h_t = a_t * h_{t+1} + b_t`` (``h_T = h0``), the form of the gradient, so backward needs no
    flipped copies. ``a`` has ``b``'s number of dimensions and broadcasts against it (the running
    decays are kept at ``a``'s own, possibly smaller, size).

    Level 1 runs the recurrence inside every chunk at once (a loop over the ``L`` positions of a
    chunk, vectorised over chunks), from a zero state, keeping the running product of decays.
    Level 2 carries the true state across chunks (a loop over ``T / L`` chunks). A final
    vectorised fix-up adds each chunk's carried-in state, decayed to every position.

    Where ops are :func:`launch_bound` it runs :func:`doubling_scan` instead (``chunk_len`` and
    ``overwrite`` unused).
    """
    if launch_bound(b.device):
        return doubling_scan(a, b, h0, reverse)
    seq_len = b.shape[0]
    a = a.expand(seq_len, *a.shape[1:])
    n_chunks = -(-seq_len // chunk_len)
    pad = n_chunks * chunk_len - seq_len
    if pad:
        # Padding with a=1, b=0 leaves the state unchanged (in either direction); padded outputs are dropped.
        a = torch.cat([a, a.new_ones((pad, *a.shape[1:]))])
        b = torch.cat([b, b.new_zeros((pad, *b.shape[1:]))])
    a = a.reshape(n_chunks, chunk_len, *a.shape[1:])
    b = b.reshape(n_chunks, chunk_len, *b.shape[1:])

    # chunk-local states from zero (in place over b: step i reads only b's step i, before writing it)
    local = b if overwrite and b.is_contiguous() else torch.empty_like(b)
    decay = torch.empty_like(a)  # running decay product inside each chunk
    order = range(chunk_len - 1, -1, -1) if reverse else range(chunk_len)
    previous = None
    for i in order:
        if previous is None:
            local[:, i] = b[:, i]
            decay[:, i] = a[:, i]
        else:
            torch.addcmul(b[:, i], a[:, i], local[:, previous], out=local[:, i])
            torch.mul(a[:, i], decay[:, previous], out=decay[:, i])
        previous = i

    carried = torch.empty((n_chunks, *h0.shape), dtype=b.dtype, device=b.device)
    h = h0
    for c in reversed(range(n_chunks)) if reverse else range(n_chunks):
        carried[c] = h
        h = torch.addcmul(local[c, previous], decay[c, previous], h)

    out = local.addcmul_(decay, carried.unsqueeze(1))
    return out.reshape(n_chunks * chunk_len, *b.shape[2:])[:seq_len]


def doubling_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """The recurrence of :func:`chunked_scan` in ``ceil(log2 T)`` whole-sequence steps (the
    Hillis-Steele scan, 1986, of the affine maps ``h -> a_t h + b_t``): after the step with span
    ``k``, every ``h_t`` holds the map over the ``2k`` steps up to ``t`` applied to zero (or to
    ``h0``, once the span reaches the first step) and ``a_t`` the product of those steps' decays.

    About ``4 log2 T`` operations, against the chunked form's ``4 sqrt T`` (every one a kernel
    launch on an accelerator, where the training step is launch-bound) for ``log2 T`` times the
    work, which an accelerator has to spare; only products of decays and sums, as the loop's.
    """
    seq_len = b.shape[0]
    a = a.expand(seq_len, *a.shape[1:])
    h = b.clone()
    edge = seq_len - 1 if reverse else 0
    h[edge] = torch.addcmul(h[edge], a[edge], h0)  # h0 enters through the first step in time
    span = 1
    while span < seq_len:
        if reverse:  # h_t += a_t h_{t+span}: what the later steps' span carries back
            h = torch.cat([torch.addcmul(h[:-span], a[:-span], h[span:]), h[-span:]])
            if 2 * span < seq_len:
                a = torch.cat([a[:-span] * a[span:], a[-span:]])
        else:
            h = torch.cat([h[:span], torch.addcmul(h[span:], a[span:], h[:-span])])
            if 2 * span < seq_len:
                a = torch.cat([a[:span], a[span:] * a[:-span]])
        span *= 2
    return h


class _LinearScan(torch.autograd.Function):
    """Autograd wrapper: the backward of a linear recurrence is the same recurrence reversed in time.

    With g_t = dL/dh_t (total), g_t = grad_t + a_{t+1} * g_{t+1}; then dL/db_t = g_t,
    dL/da_t = g_t * h_{t-1} and dL/dh0 = a_0 * g_0. Only ``a``, ``h0`` and the outputs are saved.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_len: int) -> torch.Tensor:
        with torch.no_grad():
            h = chunked_scan(a, b, h0, chunk_len)
        ctx.save_for_backward(a, h0, h)
        ctx.chunk_len = chunk_len
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):
        a, h0, h = ctx.saved_tensors
        # g_t is decayed by a_{t+1}; a_T does not exist (0). Shifted at a's own size, not h's.
        a_time = a.expand(h.shape[0], *a.shape[1:])
        a_next = torch.cat([a_time[1:], torch.zeros_like(a_time[:1])])
        g = chunked_scan(a_next, grad_h, torch.zeros_like(h0), ctx.chunk_len, reverse=True)
        grad_a = grad_b = grad_h0 = None
        if ctx.needs_input_grad[0]:
            # g_t * h_{t-1}, with h_{-1} = h0, written in place of a concatenated copy of h
            product = torch.empty_like(h)
            torch.mul(g[1:], h[:-1], out=product[1:])
            torch.mul(g[0], h0, out=product[0])
            grad_a = product.sum_to_size(a.shape)
        if ctx.needs_input_grad[1]:
            grad_b = g
        if ctx.needs_input_grad[2]:
            grad_h0 = (a[0] * g[0]).sum_to_size(h0.shape)
        return grad_a, grad_b, grad_h0, None


def linear_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk_len: int | None = None) -> torch.Tensor:
    """All states of ``h_t = a_t * h_{t-1} + b_t`` for ``t = 0..T-1``, chunked-parallel.

    :param a: decays, shape ``(T, ...)`` (or ``(1, ...)``) with ``b``'s number of dimensions,
        broadcastable to it (e.g. one gate shared by several state vectors); set ``a_t = 0`` to reset before step ``t``
    :param b: inputs, shape ``(T, *S)``
    :param h0: state before step 0, shape ``S``
    :param chunk_len: chunk length of the two-level scan (default about ``sqrt(T)``)
    :return: ``(T, *S)``
    """
    if b.shape[0] == 0:
        raise ValueError("linear_scan needs at least one time step")
    if h0.shape != b.shape[1:]:
        raise ValueError(f"linear_scan: h0 has shape {tuple(h0.shape)}, expected {tuple(b.shape[1:])}")
    if a.dim() != b.dim() or a.shape[0] not in (1, b.shape[0]):
        raise ValueError(
            f"linear_scan: decays of shape {tuple(a.shape)} do not broadcast per step against inputs of shape {tuple(b.shape)}"
        )
    if chunk_len is None:
        chunk_len = default_chunk_len(b.shape[0])
    return _LinearScan.apply(a, b, h0, int(chunk_len))


#: Gate decays are floored at exp(LOG_DECAY_FLOOR) (about 4.5e-5) on every path. The chunked
#: attention form multiplies by exp(+-sum of log-decays over half a chunk); the floor bounds that sum
#: by 10 * CHUNK_LEN / 2 = 40, far inside float32's range (exp(88)). A gate can still erase all but
#: 4.5e-5 of the memory in one step; an episode start still erases all of it (through masks).
LOG_DECAY_FLOOR = -10.0
#: the floor itself, for paths that work with decays rather than their logs
DECAY_FLOOR = math.exp(LOG_DECAY_FLOOR)
#: chunk length of the chunked attention form (see LOG_DECAY_FLOOR before raising it)
CHUNK_LEN = 8


def floor_decay(decay: torch.Tensor) -> torch.Tensor:
    """Apply the decay floor (see :data:`LOG_DECAY_FLOOR`) to decays (the step path)."""
    return decay.clamp_min(DECAY_FLOOR)


def floor_log_decay(log_decay: torch.Tensor) -> torch.Tensor:
    """Apply the same floor to log-decays (the chunked path, which works in logs)."""
    return log_decay.clamp_min(LOG_DECAY_FLOOR)


class GatedChunks:
    """Chunk bookkeeping for the chunked form of gated linear attention.

    The training sequence is cut into chunks of ``CHUNK_LEN`` steps. Inside a chunk, the decay
    product between input ``s`` and step ``t`` is ``exp(c_t - c_s)`` with ``c`` the running sum of
    log-decays; it factorises as ``inflate_t * deflate_s`` around the chunk's middle, which turns the
    within-chunk part into matrix products. Episode starts are applied with masks, not decays:
    a pair ``(t, s)`` interacts only if no start lies in ``(s, t]``; the state carried into a chunk
    reaches ``t`` only if no start lies in ``[0, t]``. Only the state at chunk boundaries is
    materialised (idea after the chunkwise form of gated linear attention, Yang et al. 2024,
    "Gated Linear Attention Transformers with Hardware-Efficient Training").

    :param starts: ``(T, B)`` episode starts (0/1)
    """

    def __init__(self, starts: torch.Tensor, chunk_len: int = CHUNK_LEN) -> None:
        self.seq_len = starts.shape[0]
        self.chunk_len = min(chunk_len, self.seq_len)
        self.n_chunks = -(-self.seq_len // self.chunk_len)
        self.pad = self.n_chunks * self.chunk_len - self.seq_len
        segment = self.chunk(starts, 0.0).long().cumsum(1)  # (n, L, B): starts so far in the chunk
        length = self.chunk_len
        causal = torch.ones(length, length, dtype=torch.bool, device=starts.device).tril()
        same = segment.permute(0, 2, 1).unsqueeze(-1) == segment.permute(0, 2, 1).unsqueeze(-2)  # (n, B, L, L)
        #: (n, B, 1, L, L): step t (row) may read input s (column)
        self.pair_mask = (same & causal).unsqueeze(2)
        dtype = starts.dtype
        #: (n, L, B, 1, 1): the state carried into the chunk still reaches step t
        self.reads_carry = (segment == 0).to(dtype)[..., None, None]
        #: (n, L, B, 1, 1): input s survives to the end of the chunk
        self.writes_carry = (segment == segment[:, -1:]).to(dtype)[..., None, None]
        #: (n, B, 1, 1): the carried state survives the whole chunk
        self.keeps_carry = (segment[:, -1] == 0).to(dtype)[..., None, None]

    def chunk(self, x: torch.Tensor, fill: float) -> torch.Tensor:
        """``(T, ...)`` -> ``(n_chunks, L, ...)``, padding the tail with ``fill``."""
        if self.pad:
            x = torch.cat([x, x.new_full((self.pad, *x.shape[1:]), fill)])
        return x.reshape(self.n_chunks, self.chunk_len, *x.shape[1:])

    def unchunk(self, x: torch.Tensor) -> torch.Tensor:
        """``(n_chunks, L, ...)`` -> ``(T, ...)``, dropping the padding."""
        return x.reshape(self.n_chunks * self.chunk_len, *x.shape[2:])[: self.seq_len]

    def log_decay_factors(self, log_decay: torch.Tensor) -> DecayFactors:
        """Factors of the decay products for chunked log-decays ``(n, L, B, H, X)`` (padding: log-decay 0)."""
        return DecayFactors(self, log_decay)

    def masked_scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``scores[n, b, h, t, s] = queries_t . keys_s`` where ``(t, s)`` may interact, else 0."""
        scores = torch.einsum("nlbhf,nsbhf->nbhls", queries, keys)
        # where, not a product: entries outside the mask may hold exp(+80)-sized values
        return torch.where(self.pair_mask, scores, torch.zeros((), dtype=scores.dtype, device=scores.device))


class DecayFactors:
    """For one gate: ``inflate_t * deflate_s = exp(c_t - c_s)``, the decay from input ``s`` to ``t``;
    ``from_start_t`` (carried state -> t), ``to_end_s`` (input s -> chunk end), ``whole`` (chunk).

    Built from log-decays ``(n, L, B, H, X)`` with few full-size passes (the key side is eta * d wide,
    so every pass over it costs): ``deflate`` is ``1 / inflate``, and the cells use
    ``from_start = inflate * start_scale * reads_carry`` and ``to_end = deflate * end_scale * writes_carry``
    in that factored form, with the per-chunk scales ``(n, 1, B, H, X)`` and applying the masks to
    the (much smaller) results of their products. :attr:`from_start` and :attr:`to_end` give the
    full tensors (for tests).
    """

    def __init__(self, chunks: GatedChunks, log_decay: torch.Tensor) -> None:
        self.chunks = chunks
        cumulative = log_decay.cumsum(1)  # (n, L, B, H, X)
        middle = cumulative[:, chunks.chunk_len // 2 : chunks.chunk_len // 2 + 1]
        last = cumulative[:, -1:]
        self.inflate = torch.exp(cumulative - middle)
        self.deflate = torch.reciprocal(self.inflate)
        #: exp(c_t) = inflate_t * start_scale; exp(last - c_s) = deflate_s * end_scale
        self.start_scale = torch.exp(middle)
        self.end_scale = torch.exp(last - middle)
        self.whole = torch.exp(last[:, 0]) * chunks.keeps_carry  # (n, B, H, X)

    @property
    def from_start(self) -> torch.Tensor:
        return self.inflate * self.start_scale * self.chunks.reads_carry

    @property
    def to_end(self) -> torch.Tensor:
        return self.deflate * self.end_scale * self.chunks.writes_carry
