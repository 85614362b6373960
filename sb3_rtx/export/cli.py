"""``sb3-rtx export MODEL.zip -o policy.onnx``: the command-line face of :mod:`sb3_rtx.export`.

On the zip of an ``rl_zoo3 train --algo ppo_rtx`` run, the run's ``vecnormalize.pkl`` (which the zoo
writes beside the model, in the folder named after the env) is found and baked in, as ``rl_zoo3
enjoy`` would load it: a policy trained on normalised observations is wrong on raw ones.
``--no-vec-normalize`` turns that off; ``--vec-normalize FILE`` names the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("onnx", "aoti", "torchscript")
#: the format an output's suffix implies (anything else: torchscript)
SUFFIX_FORMATS = {".onnx": "onnx", ".pt2": "aoti"}


def find_vec_normalize(model_path: Path) -> Path | None:
    """The ``vecnormalize.pkl`` of a zoo run: ``<run>/<env>/vecnormalize.pkl`` for ``<run>/<env>.zip``
    (rl_zoo3's layout), or one right beside the zip."""
    stem = model_path.name.removesuffix(".zip")
    for candidate in (model_path.parent / stem / "vecnormalize.pkl", model_path.parent / "vecnormalize.pkl"):
        if candidate.is_file():
            return candidate
    return None


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(
        prog="sb3-rtx export",
        description="Export an RtxPPO policy's deterministic acting step, with its memory as explicit inputs "
        "and outputs, to ONNX, an AOTInductor package (.pt2) or TorchScript.",
    )
    result.add_argument("model", type=Path, help="the RtxPPO zip (e.g. logs/ppo_rtx/<env>_1/<env>.zip)")
    result.add_argument(
        "-o", "--output", type=Path, required=True, help="the file to write (policy.onnx, policy.pt2, policy.pt)"
    )
    result.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="default: from the output's suffix (.onnx: onnx, .pt2: aoti, else torchscript)",
    )
    result.add_argument("--vec-normalize", type=Path, default=None, help="VecNormalize statistics (.pkl) to bake in")
    result.add_argument("--no-vec-normalize", action="store_true", help="do not bake in the zoo run's vecnormalize.pkl")
    result.add_argument("--batch-size", type=int, default=None, help="fix the batch size (default: dynamic)")
    result.add_argument("--opset", type=int, default=None, help="ONNX opset (default: sb3_rtx.export.DEFAULT_OPSET)")
    return result


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from sb3_rtx.export import ExportError, export_aoti, export_onnx, export_torchscript

    export_format = args.format or SUFFIX_FORMATS.get(args.output.suffix, "torchscript")
    vec_normalize = args.vec_normalize
    if vec_normalize is not None and args.no_vec_normalize:
        raise SystemExit("sb3-rtx export: --vec-normalize and --no-vec-normalize exclude each other")
    if vec_normalize is None and not args.no_vec_normalize:
        vec_normalize = find_vec_normalize(args.model)
        if vec_normalize is not None:
            print(f"sb3-rtx export: baking in the observation statistics of {vec_normalize} (--no-vec-normalize to skip)")
    try:
        if export_format == "onnx":
            path = export_onnx(
                args.model, args.output, batch_size=args.batch_size, opset=args.opset, vec_normalize=vec_normalize
            )
        else:
            if args.opset is not None:
                raise ExportError(f"--opset is an ONNX option; the {export_format} format has none")
            if export_format == "aoti":
                path = export_aoti(args.model, args.output, batch_size=args.batch_size, vec_normalize=vec_normalize)
            else:
                path = export_torchscript(args.model, args.output, batch_size=args.batch_size, vec_normalize=vec_normalize)
    except (ExportError, FileNotFoundError) as error:
        raise SystemExit(f"sb3-rtx export: {error}") from error
    print(f"sb3-rtx export: wrote {path} ({export_format}, {path.stat().st_size / 1024:.0f} KiB)")
