"""Memory tasks, registered with gymnasium under the ``sb3_rtx/`` namespace on import of ``sb3_rtx``.

Also the ids of the other memory suites (``suites/``: Mystery Path, Memory Maze, Craftax, POPGym),
whose packages are optional and imported only when one of their envs is made.
"""

from gymnasium.envs.registration import register, registry

from sb3_rtx.envs.cue_recall import CueRecallEnv
from sb3_rtx.envs.suites import SuiteNotInstalledError, register_suites, suite_ids
from sb3_rtx.envs.tmaze import TMazeEnv


def register_envs() -> None:
    """Register the tasks (idempotent)."""
    if "sb3_rtx/CueRecall-v0" not in registry:
        register(id="sb3_rtx/CueRecall-v0", entry_point="sb3_rtx.envs.cue_recall:CueRecallEnv")
    if "sb3_rtx/TMaze-v0" not in registry:  # no max_episode_steps: TMazeEnv truncates at its time_limit
        register(id="sb3_rtx/TMaze-v0", entry_point="sb3_rtx.envs.tmaze:TMazeEnv")
    register_suites()


register_envs()

__all__ = ["CueRecallEnv", "SuiteNotInstalledError", "TMazeEnv", "register_envs", "suite_ids"]
