"""Test-wide settings."""

import torch

# pytest runs with -n 2 (one worker per core); torch's own thread pool on top of that
# oversubscribes the cores and OpenMP's spin-waiting can make runs 10x slower. Tests time nothing.
torch.set_num_threads(1)
