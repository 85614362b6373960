"""Memory tasks, registered with gymnasium under the ``sb3_rtx/`` namespace on import of ``sb3_rtx``."""

from gymnasium.envs.registration import register, registry

from sb3_rtx.envs.cue_recall import CueRecallEnv


def register_envs() -> None:
    """Register the tasks (idempotent)."""
    if "sb3_rtx/CueRecall-v0" not in registry:
        register(id="sb3_rtx/CueRecall-v0", entry_point="sb3_rtx.envs.cue_recall:CueRecallEnv")


register_envs()

__all__ = ["CueRecallEnv", "register_envs"]
