"""Export a trained RtxPPO policy (ONNX, an AOTInductor package, TorchScript), its memory as explicit inputs and outputs.

    from sb3_rtx.export import export_onnx, initial_state
    export_onnx(model, "policy.onnx")            # or a path to the model's zip
    state = initial_state("policy.onnx", batch_size=1)

See the docs page "Export" for the signature of the exported step and a deployment loop.
"""

from sb3_rtx.export.exporters import DEFAULT_OPSET, build_step, export_aoti, export_onnx, export_torchscript
from sb3_rtx.export.graph import ExportError, PolicyStep
from sb3_rtx.export.metadata import METADATA_KEY, initial_state, load_aoti, load_torchscript, read_metadata

__all__ = [
    "DEFAULT_OPSET",
    "METADATA_KEY",
    "ExportError",
    "PolicyStep",
    "build_step",
    "export_aoti",
    "export_onnx",
    "export_torchscript",
    "initial_state",
    "load_aoti",
    "load_torchscript",
    "read_metadata",
]
