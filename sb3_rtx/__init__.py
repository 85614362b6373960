"""sb3_rtx: recurrent transformer cells (GaLiTe, AGaLiTe) for Stable-Baselines3 and the RL zoo."""

from sb3_rtx.cells import CELLS, RecurrentCell, make_cell

__version__ = "0.1.0"

__all__ = ["CELLS", "RecurrentCell", "__version__", "make_cell"]
