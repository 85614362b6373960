"""The AGaLiTe paper's other test beds (and POPGym), as gymnasium ids under ``sb3_rtx/``.

Registering imports nothing from the suites' packages: each package is imported when its env is
made (``gym.make``), and a missing one raises :class:`SuiteNotInstalledError` naming the extra to
install. The adapters turn each suite into what SB3 and RtxPPO train on: ``Box`` observations
(uint8 images channel-last, or float32 vectors), ``Discrete`` / ``MultiDiscrete`` actions, the
gymnasium ``terminated`` / ``truncated`` split, and ``info["is_success"]`` where the suite defines
success.

========================================  =============  ========================================
ids                                       extra          package
========================================  =============  ========================================
sb3_rtx/MysteryPath-v0, -Grid-v0          memorygym      memory-gym 1.0.2 (installed --no-deps)
sb3_rtx/MemoryMaze-{9x9..15x15}-v0        memorymaze     memory-maze (dm_control, MuJoCo)
sb3_rtx/Craftax-Symbolic-v0,              craftax        craftax (JAX)
sb3_rtx/Craftax-Classic-Symbolic-v0
sb3_rtx/POPGym-<Task>-<Easy|Medium|Hard>-v0  popgym      popgym
========================================  =============  ========================================
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from sb3_rtx.envs.suites._common import SuiteNotInstalledError

MEMORY_GYM_IDS = ("MysteryPath-v0", "MysteryPath-Grid-v0")
MEMORY_MAZE_SIZES = ("9x9", "11x11", "13x13", "15x15")
CRAFTAX_IDS = {"Craftax-Symbolic-v0": "Craftax-Symbolic-v1", "Craftax-Classic-Symbolic-v0": "Craftax-Classic-Symbolic-v1"}
# POPGym's tasks (popgym 1.0.x), each at three levels. Left out: LabyrinthEscape/Explore, which
# popgym only defines when the optional `mazelib` package is installed (it builds from source).
POPGYM_TASKS = (
    "RepeatPrevious", "RepeatFirst", "CountRecall", "Autoencode",  # diagnostic memory tasks
    "Battleship", "Concentration", "HigherLower", "MineSweeper",  # games
    "MultiarmedBandit",
    "PositionOnlyCartPole", "VelocityOnlyCartPole", "PositionOnlyPendulum",  # control
    "NoisyPositionOnlyCartPole", "NoisyPositionOnlyPendulum",
)  # fmt: skip
POPGYM_LEVELS = ("Easy", "Medium", "Hard")


def suite_ids() -> dict[str, list[str]]:
    """The registered ids of each suite, by extra name."""
    return {
        "memorygym": [f"sb3_rtx/{name}" for name in MEMORY_GYM_IDS],
        "memorymaze": [f"sb3_rtx/MemoryMaze-{size}-v0" for size in MEMORY_MAZE_SIZES],
        "craftax": [f"sb3_rtx/{name}" for name in CRAFTAX_IDS],
        "popgym": [f"sb3_rtx/POPGym-{task}-{level}-v0" for task in POPGYM_TASKS for level in POPGYM_LEVELS],
    }


def _register(env_id: str, entry_point: str, **kwargs) -> None:
    if env_id not in registry:
        register(id=env_id, entry_point=entry_point, kwargs=kwargs)


def register_suites() -> None:
    """Register every suite id (idempotent; imports none of the suites' packages)."""
    for name in MEMORY_GYM_IDS:
        _register(f"sb3_rtx/{name}", "sb3_rtx.envs.suites.memorygym:MemoryGymEnv", task=name)
    for size in MEMORY_MAZE_SIZES:
        _register(f"sb3_rtx/MemoryMaze-{size}-v0", "sb3_rtx.envs.suites.memorymaze:MemoryMazeEnv", size=size)
    for name, craftax_name in CRAFTAX_IDS.items():
        _register(f"sb3_rtx/{name}", "sb3_rtx.envs.suites.craftax_symbolic:CraftaxSymbolicEnv", name=craftax_name)
    for task in POPGYM_TASKS:
        for level in POPGYM_LEVELS:
            _register(f"sb3_rtx/POPGym-{task}-{level}-v0", "sb3_rtx.envs.suites.popgym_tasks:make_popgym", task=task + level)


__all__ = ["SuiteNotInstalledError", "register_suites", "suite_ids"]
