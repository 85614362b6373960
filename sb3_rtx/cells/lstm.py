"""LSTM baseline behind the cell interface (the architecture of sb3-contrib's RecurrentPPO).

The multi-step form cuts every env's sequence into segments at its episode starts and runs all
segments through ``torch.nn.LSTM`` in one packed call, each from its own initial state (the given
state for a segment that continues an episode, zeros for one that starts an episode). sb3-contrib
instead steps through time in Python whenever a sequence holds an episode start.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from sb3_rtx.cells.base import CellState, RecurrentCell, check_positive_int


class LSTM(RecurrentCell):
    """Multi-layer LSTM; state ``(h: (n_layers, hidden_size), c: (n_layers, hidden_size))`` per env.

    State per env: ``2 * n_layers * hidden_size`` floats.

    :param input_dim: size of each input vector
    :param hidden_size: LSTM units (sb3-contrib's default is 256)
    :param n_layers: stacked LSTM layers
    """

    name = "lstm"

    def __init__(self, input_dim: int, hidden_size: int = 256, n_layers: int = 1) -> None:
        check_positive_int("LSTM", input_dim=input_dim, hidden_size=hidden_size, n_layers=n_layers)
        super().__init__(input_dim, hidden_size)
        self.hidden_size, self.n_layers = hidden_size, n_layers
        self.lstm = nn.LSTM(input_dim, hidden_size, num_layers=n_layers)

    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.n_layers, self.hidden_size), (self.n_layers, self.hidden_size)

    def _forward(self, x: torch.Tensor, state: CellState, starts: torch.Tensor) -> tuple[torch.Tensor, CellState]:
        keep = 1.0 - starts
        h0, c0 = (s.transpose(0, 1) * keep[0].view(1, -1, 1) for s in state)  # torch wants (layers, B, H)
        if x.shape[0] == 1 or not bool(starts[1:].any()):
            y, (h, c) = self.lstm(x, (h0.contiguous(), c0.contiguous()))
            return y, (h.transpose(0, 1), c.transpose(0, 1))
        return self._segmented(x, starts, h0, c0)

    def _segmented(self, x, starts, h0, c0) -> tuple[torch.Tensor, CellState]:
        seq_len, batch, _ = x.shape
        # Segments in env-major order: a new one begins at t == 0 and at every episode start.
        begins = starts.bool().transpose(0, 1).clone()  # (B, T)
        begins[:, 0] = True
        segment_of = begins.reshape(-1).long().cumsum(0) - 1  # (B*T,) segment id of each step
        n_segments = int(segment_of[-1]) + 1
        first_step = torch.nonzero(begins.reshape(-1)).squeeze(1)  # flat index where each segment begins
        offset = torch.arange(batch * seq_len, device=x.device) - first_step[segment_of]  # position in segment
        lengths = torch.bincount(segment_of, minlength=n_segments)
        max_len = int(lengths.max())

        flat_x = x.transpose(0, 1).reshape(batch * seq_len, -1)
        padded = x.new_zeros((max_len, n_segments, x.shape[-1]))
        padded[offset, segment_of] = flat_x

        # A segment continues the given state only if it is its env's first and no start opens it.
        segment_env = first_step // seq_len
        continues = (first_step % seq_len == 0) & ~starts.bool()[0, segment_env]
        weight = continues.to(x.dtype).view(1, -1, 1)
        seg_h0 = (h0[:, segment_env] * weight).contiguous()
        seg_c0 = (c0[:, segment_env] * weight).contiguous()

        packed = pack_padded_sequence(padded, lengths.cpu(), enforce_sorted=False)
        out_packed, (seg_h, seg_c) = self.lstm(packed, (seg_h0, seg_c0))
        out, _ = pad_packed_sequence(out_packed, total_length=max_len)  # (max_len, n_segments, H)
        y = out[offset, segment_of].view(batch, seq_len, -1).transpose(0, 1)

        # each env's final state is that of its last segment
        last_segment = torch.zeros(batch, dtype=torch.long, device=x.device).scatter_reduce(
            0, segment_env, torch.arange(n_segments, device=x.device), reduce="amax"
        )
        return y, (seg_h[:, last_segment].transpose(0, 1), seg_c[:, last_segment].transpose(0, 1))
