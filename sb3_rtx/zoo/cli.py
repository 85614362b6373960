"""The ``sb3-rtx`` command: register ``ppo_rtx`` explicitly, then run rl_zoo3's own script
(``sb3-rtx export`` is sb3_rtx's own, see :mod:`sb3_rtx.export.cli`).

``sb3-rtx train --env CartPoleNoVel-v1`` is ``rl_zoo3 train --algo ppo_rtx --env CartPoleNoVel-v1``
for environments where the import hook is turned off or not installed. Every rl_zoo3 flag passes
through unchanged; ``--algo`` defaults to ``ppo_rtx`` instead of ``ppo``.
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable

from sb3_rtx.zoo import ALGO, register

#: scripts whose parser takes --algo (rl_zoo3's default would be ppo)
TAKES_ALGO = ("train", "enjoy", "record_video", "record_training")


def _call(module: str, function: str) -> Callable[[], None]:
    def run() -> None:
        getattr(__import__(module, fromlist=[function]), function)()

    return run


def _run_module(module: str) -> Callable[[], None]:
    # record_video / record_training do their work under `if __name__ == "__main__"`
    def run() -> None:
        runpy.run_module(module, run_name="__main__", alter_sys=True)

    return run


SCRIPTS: dict[str, Callable[[], None]] = {
    "train": _call("rl_zoo3.train", "train"),
    "enjoy": _call("rl_zoo3.enjoy", "enjoy"),
    "record_video": _run_module("rl_zoo3.record_video"),
    "record_training": _run_module("rl_zoo3.record_training"),
    "plot_train": _call("rl_zoo3.plots", "plot_train"),
    "plot_from_file": _call("rl_zoo3.plots", "plot_from_file"),
    "all_plots": _call("rl_zoo3.plots", "all_plots"),
}
#: sb3_rtx's own commands (not rl_zoo3 scripts): they take their own flags
OWN_COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "export": lambda argv: __import__("sb3_rtx.export.cli", fromlist=["main"]).main(argv),
}

USAGE = f"""usage: sb3-rtx {{{",".join(SCRIPTS)}}} [rl_zoo3 flags ...]
       sb3-rtx export MODEL.zip -o policy.onnx [--format onnx|torchscript] [--vec-normalize FILE]

Runs rl_zoo3's script of that name with {ALGO!r} registered (and --algo {ALGO} by default);
export writes a trained policy to ONNX or TorchScript (sb3-rtx export --help).
Example: sb3-rtx train --env CartPoleNoVel-v1 -n 20000
         sb3-rtx enjoy --env CartPoleNoVel-v1 -f logs/ --no-render
         sb3-rtx export logs/ppo_rtx/CartPoleNoVel-v1_1/CartPoleNoVel-v1.zip -o policy.onnx"""


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return
    script, rest = args[0], args[1:]
    if script in OWN_COMMANDS:
        OWN_COMMANDS[script](rest)
        return
    if script not in SCRIPTS:
        raise SystemExit(f"sb3-rtx: unknown script {script!r}\n{USAGE}")
    register()
    if script in TAKES_ALGO and not any(arg == "--algo" or arg.startswith("--algo=") for arg in rest):
        rest = ["--algo", ALGO, *rest]
    sys.argv = [f"sb3-rtx {script}", *rest]
    SCRIPTS[script]()
