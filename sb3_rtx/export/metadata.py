"""What an exported file says about itself: input and output names, state shapes and dtypes, the
observation and action spaces. Stored as one JSON document under :data:`METADATA_KEY`, in the ONNX
model's ``metadata_props``, the AOTInductor package's metadata and the TorchScript archive's extra
files, so a deployment can size its state and check its inputs without torch or SB3 (``json`` and
``numpy`` suffice)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

#: key of the JSON document (ONNX ``metadata_props`` key; TorchScript extra file name)
METADATA_KEY = "sb3_rtx"
#: bumped when the layout of the document or of the graph's inputs and outputs changes
FORMAT_VERSION = 1


def describe_space(space: spaces.Space) -> dict[str, Any]:
    """A JSON description of a gymnasium space (type, shape, dtype, and its bounds or sizes)."""
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: describe_space(sub) for key, sub in space.spaces.items()}}
    description: dict[str, Any] = {
        "type": type(space).__name__,
        "shape": list(space.shape or ()),
        "dtype": str(np.dtype(space.dtype)) if space.dtype is not None else None,
    }
    if isinstance(space, spaces.Box):
        description.update(low=space.low.tolist(), high=space.high.tolist())
    elif isinstance(space, spaces.Discrete):
        description.update(n=int(space.n), start=int(space.start))
    elif isinstance(space, spaces.MultiDiscrete):
        description.update(nvec=space.nvec.tolist())
    elif isinstance(space, spaces.MultiBinary):
        description.update(n=np.asarray(space.n).tolist())
    return description


def tensor_spec(name: str, shape: list[int | str], dtype: str, **extra: Any) -> dict[str, Any]:
    """One input or output: its name, shape (``"batch"`` where it is the batch) and numpy dtype."""
    return {"name": name, "shape": shape, "dtype": dtype, **extra}


def to_json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, sort_keys=False)


def read_metadata(source: Any) -> dict[str, Any]:
    """The metadata of an exported policy: ``source`` is a ``.onnx``, ``.pt2`` (AOTInductor) or
    TorchScript path, an ``onnxruntime.InferenceSession``, or a package :func:`load_aoti` loaded."""
    if hasattr(source, "get_modelmeta"):  # an onnxruntime session
        properties = source.get_modelmeta().custom_metadata_map
        return _parse(properties, "the onnxruntime session")
    if hasattr(source, "get_metadata"):  # a loaded AOTInductor package
        return _parse(source.get_metadata(), "the AOTInductor package")
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no exported policy at {path}")
    if path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return _parse({prop.key: prop.value for prop in model.metadata_props}, str(path))
    if path.suffix == ".pt2":
        return _parse(load_aoti(path).get_metadata(), str(path))
    extra = {METADATA_KEY: ""}
    load_torchscript(path, _extra_files=extra)
    return _parse(extra, str(path))


def load_torchscript(path: str | Path, **kwargs: Any) -> Any:
    """``torch.jit.load(path)`` on CPU, without torch's notice that TorchScript is deprecated (it is
    still shipped, and what :func:`~sb3_rtx.export.export_torchscript` writes)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu", **kwargs)


def load_aoti(path: str | Path) -> Any:
    """The AOTInductor package that :func:`~sb3_rtx.export.export_aoti` wrote, loaded for Python:
    called as ``package(*observations, episode_start, *state)`` with CPU tensors, it returns
    ``[action, value, *next_state]``."""
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no exported policy at {path}")
    return torch._inductor.aoti_load_package(str(path))


def _parse(properties: dict[str, str], where: str) -> dict[str, Any]:
    text = properties.get(METADATA_KEY)
    if not text:
        raise ValueError(f"{where} has no {METADATA_KEY!r} metadata: was it written by sb3_rtx.export?")
    return json.loads(text)


def initial_state(source: Any, batch_size: int = 1) -> dict[str, np.ndarray]:
    """Zeros for the state inputs of an exported policy, for ``batch_size`` envs: ``{input name: array}``
    in the graph's order, ready to be merged into an onnxruntime feed.

    :param source: a ``.onnx``, ``.pt2`` or TorchScript path, an ``onnxruntime.InferenceSession``, a
        loaded AOTInductor package, or the metadata dict itself
    :param batch_size: envs; must be the exported batch size if the export fixed one
    """
    metadata = source if isinstance(source, dict) else read_metadata(source)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    fixed = metadata.get("batch_size")
    if fixed is not None and batch_size != fixed:
        raise ValueError(f"this policy was exported for batch_size={fixed}, got batch_size={batch_size}")
    return {spec["name"]: np.zeros([batch_size, *spec["shape"][1:]], dtype=spec["dtype"]) for spec in metadata["state_inputs"]}
