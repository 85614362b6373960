"""sb3_rtx: recurrent transformer cells (GaLiTe, AGaLiTe) for Stable-Baselines3 and the RL zoo."""

from sb3_rtx import envs  # noqa: F401  (registers the sb3_rtx/ gymnasium tasks)
from sb3_rtx.cells import CELLS, RecurrentCell, make_cell
from sb3_rtx.policies import CnnRtxPolicy, MlpRtxPolicy, MultiInputRtxPolicy, RtxActorCriticPolicy
from sb3_rtx.ppo import RtxPPO

__version__ = "0.1.0"

__all__ = [
    "CELLS",
    "CnnRtxPolicy",
    "MlpRtxPolicy",
    "MultiInputRtxPolicy",
    "RecurrentCell",
    "RtxActorCriticPolicy",
    "RtxPPO",
    "__version__",
    "make_cell",
]
