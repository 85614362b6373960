"""``export_onnx``, ``export_aoti`` and ``export_torchscript``: write an RtxPPO policy's acting step to
a file that runs without SB3 (ONNX: without torch either; AOTInductor: without Python, from
libtorch's C++ loader), with the recurrent state as explicit inputs/outputs.

Idea and need: "How do I export RecurrentPPO as an onnx model?" (DLR-RM/stable-baselines3 #1125)
and SB3's export guide (docs, "Exporting models"), which exports a feed-forward PPO's
``forward`` through ``torch.onnx.export``; here the state is threaded through the graph as well.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import pickle
import warnings
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import torch

import sb3_rtx
from sb3_rtx.export.graph import ExportError, PolicyStep, example_inputs
from sb3_rtx.export.metadata import FORMAT_VERSION, METADATA_KEY, describe_space, tensor_spec, to_json
from sb3_rtx.policies import RtxActorCriticPolicy

#: ONNX opset used when none is given (onnxruntime 1.17+ runs it)
DEFAULT_OPSET = 18
#: the oldest opset torch's (dynamo) exporter writes
MIN_OPSET = 18


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's logger (it warns that torchvision's ops are not registered)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _require_onnx_packages() -> None:
    """torch's ONNX exporter needs onnx and onnxscript, which torch does not install: say which extra has them."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"export_onnx needs {' and '.join(missing)}, which the [export] extra installs: pip install 'sb3-rtx[export]'"
        )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _describe(step: PolicyStep) -> str:
    policy = step.policy
    return (
        f"the policy (cell {policy.cell_name!r}, features extractor {type(policy.features_extractor).__name__}, "
        f"observation space {policy.observation_space}, action space {policy.action_space})"
    )


def check_saved_rtx_model(path: Path) -> None:
    """Raise :class:`ExportError` unless ``path`` is an SB3 zip whose policy is an RtxPPO policy: a
    plain PPO's zip, or a file that is not a saved model, would otherwise fail deep inside loading."""
    from stable_baselines3.common.save_util import load_from_zip_file

    try:
        data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
    except ValueError as error:  # SB3's "wasn't a zip-file"
        raise ExportError(f"{path} is not a saved Stable-Baselines3 model (a zip): {error}") from error
    policy_class = (data or {}).get("policy_class")
    if not (isinstance(policy_class, type) and issubclass(policy_class, RtxActorCriticPolicy)):
        name = getattr(policy_class, "__name__", repr(policy_class))
        raise ExportError(f"export needs an RtxPPO model or its policy, got a model whose policy is {name} ({path})")


def load_policy(model: Any) -> RtxActorCriticPolicy:
    """A CPU float32 copy of the policy of ``model`` (an RtxPPO, its policy, or a path to its zip)."""
    from sb3_rtx.ppo import RtxPPO

    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists() and not path.with_suffix(".zip").exists():
            raise FileNotFoundError(f"no saved model at {path}")
        check_saved_rtx_model(path)
        model = RtxPPO.load(path, device="cpu")
    policy = getattr(model, "policy", model)
    if not isinstance(policy, RtxActorCriticPolicy):
        raise ExportError(f"export needs an RtxPPO model or its policy, got a {type(model).__name__}")
    # a fresh policy from the constructor parameters and weights, as SB3's save/load rebuilds one
    # (deepcopy fails after training: the action distribution holds tensors of the last graph)
    parameters = dict(policy._get_constructor_parameters(), compile_acting=False, compile_training=False)
    policy_copy = type(policy)(**parameters)
    policy_copy.load_state_dict({key: value.detach().cpu() for key, value in policy.state_dict().items()})
    policy = policy_copy.float()
    policy.set_training_mode(False)
    for parameter in policy.parameters():
        parameter.requires_grad_(False)
    return policy


def load_vec_normalize(vec_normalize: Any) -> Any:
    """A VecNormalize (or its saved ``.pkl``) whose observation statistics go into the graph."""
    if vec_normalize is None:
        return None
    if isinstance(vec_normalize, (str, Path)):
        path = Path(vec_normalize)
        if not path.exists():
            raise FileNotFoundError(f"no VecNormalize statistics at {path}")
        with path.open("rb") as file:
            vec_normalize = pickle.load(file)  # what VecNormalize.load does before attaching an env
    if not hasattr(vec_normalize, "obs_rms"):
        kind = type(vec_normalize).__name__
        raise ExportError(f"vec_normalize must be a VecNormalize or the path of its saved .pkl, got {kind}")
    if not getattr(vec_normalize, "norm_obs", True):
        return None  # it normalises rewards only: nothing for the policy's inputs
    return vec_normalize


def _check_batch_size(batch_size: int | None) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ExportError(f"batch_size must be a positive int or None (a dynamic batch), got {batch_size!r}")


def _traced_inputs(step: PolicyStep, batch_size: int | None) -> tuple[tuple, tuple | None]:
    """Example inputs for ``torch.export`` and, for a dynamic batch, its ``dynamic_shapes``: traced at
    batch 2 when dynamic, so that no size-1 dimension is specialised."""
    example = example_inputs(step, 2 if batch_size is None else batch_size)
    if batch_size is not None:
        return example, None
    batch = torch.export.Dim("batch", min=1)
    return example, (tuple({0: batch} for _ in example),)  # forward(*inputs): one varargs entry


def build_step(model: Any, vec_normalize: Any = None) -> PolicyStep:
    """The exportable step module of ``model`` (see :class:`~sb3_rtx.export.graph.PolicyStep`)."""
    return PolicyStep(load_policy(model), load_vec_normalize(vec_normalize)).eval()


def io_names(step: PolicyStep) -> tuple[list[str], list[str]]:
    """Input and output names of the exported graph."""
    n_state = len(step.policy.initial_state(1))
    observations = ["obs" if key is None else f"obs.{key}" for key in step.keys]
    inputs = [*observations, "episode_start", *(f"state_{i}" for i in range(n_state))]
    outputs = ["action", "value", *(f"next_state_{i}" for i in range(n_state))]
    return inputs, outputs


def build_metadata(step: PolicyStep, batch_size: int | None, runtime: str) -> dict[str, Any]:
    """The JSON document stored in the exported file (see :mod:`sb3_rtx.export.metadata`)."""
    policy = step.policy
    inputs, outputs = io_names(step)
    batch: int | str = "batch" if batch_size is None else batch_size
    example = example_inputs(step, 1)
    n_obs = len(step.keys)
    with torch.no_grad():
        action, *_ = step(*example)
    observation_inputs = [
        tensor_spec(name, [batch, *tensor.shape[1:]], str(tensor.numpy().dtype), key=key)
        for name, tensor, key in zip(inputs[:n_obs], example[:n_obs], step.keys, strict=True)
    ]
    cells = ["actor"] * step.n_actor_state + ["critic"] * (len(example) - n_obs - 1 - step.n_actor_state)
    state_inputs = [
        tensor_spec(name, [batch, *tensor.shape[1:]], "float32", cell=cell)
        for name, tensor, cell in zip(inputs[n_obs + 1 :], example[n_obs + 1 :], cells, strict=True)
    ]
    state_outputs = [dict(spec, name=name) for spec, name in zip(state_inputs, outputs[2:], strict=True)]
    return {
        "format_version": FORMAT_VERSION,
        "runtime": runtime,
        "sb3_rtx_version": sb3_rtx.__version__,
        "cell": policy.cell_name,
        "cell_kwargs": policy.resolved_cell_kwargs(),
        "shared_cell": policy.shared_cell,
        "batch_size": batch_size,
        "observation_space": describe_space(policy.observation_space),
        "action_space": describe_space(policy.action_space),
        "vec_normalize": step.normalizer is not None,
        "observation_inputs": observation_inputs,
        "episode_start_input": tensor_spec("episode_start", [batch], "bool"),
        "state_inputs": state_inputs,
        "action_output": tensor_spec("action", [batch, *action.shape[1:]], str(action.numpy().dtype)),
        "value_output": tensor_spec("value", [batch], "float32"),
        "state_outputs": state_outputs,
        "inputs": inputs,
        "outputs": outputs,
        "usage": (
            "Each step: feed the observations, episode_start (True where an env's episode begins, "
            "which resets its state) and the state from the previous step (zeros at the start, shapes "
            "in state_inputs); the outputs are the deterministic action, the value and the next state, "
            "next_state_i to be fed back as state_i."
        ),
    }


def export_onnx(
    model: Any,
    path: str | Path,
    *,
    batch_size: int | None = None,
    opset: int | None = None,
    vec_normalize: Any = None,
) -> Path:
    """Write ``model``'s deterministic acting step to an ONNX file; returns its path.

    :param model: an RtxPPO, its policy, or the path of its saved zip (an ``rl_zoo3 train`` run's too)
    :param path: the ``.onnx`` file to write
    :param batch_size: envs per call fixed in the graph; None (default) makes the batch dynamic
    :param opset: ONNX opset (default :data:`DEFAULT_OPSET`)
    :param vec_normalize: a VecNormalize or its ``.pkl``: its observation statistics are baked in,
        so the graph takes raw observations
    """
    _check_batch_size(batch_size)
    _require_onnx_packages()
    step = build_step(model, vec_normalize)
    inputs, outputs = io_names(step)
    example, dynamic_shapes = _traced_inputs(step, batch_size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET):
        raise ExportError(f"opset must be an int >= {MIN_OPSET} (the exporter's oldest), got {opset!r}")
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")  # the exporter's progress chatter
        try:
            program = torch.onnx.export(
                step,
                example,
                dynamo=True,
                input_names=inputs,
                output_names=outputs,
                opset_version=opset or DEFAULT_OPSET,
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                verbose=False,
            )
        except Exception as error:  # torch.export could not trace a part of this policy
            raise ExportError(f"torch.onnx.export failed for {_describe(step)}: {_first_line(error)}") from error
    assert program is not None
    metadata = build_metadata(step, batch_size, "onnx")
    program.model.metadata_props[METADATA_KEY] = to_json(metadata)
    program.save(str(path))
    return path


def export_torchscript(model: Any, path: str | Path, *, batch_size: int | None = None, vec_normalize: Any = None) -> Path:
    """Write ``model``'s deterministic acting step as a TorchScript module; returns its path.

    ``torch.jit.load(path)`` gives a module called as ``module(*observations, episode_start, *state)``
    returning ``(action, value, *next_state)``; the metadata is in the archive's extra file
    ``"sb3_rtx"`` (:func:`~sb3_rtx.export.metadata.read_metadata`). Parameters as for :func:`export_onnx`.
    """
    _check_batch_size(batch_size)
    step = build_step(model, vec_normalize)
    example, _ = _traced_inputs(step, batch_size)  # tracing keeps every shape symbolic but size-1 ones
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation notice
        try:
            traced = torch.jit.trace(step, example, check_trace=False, strict=False)
        except Exception as error:
            raise ExportError(f"torch.jit.trace failed for {_describe(step)}: {_first_line(error)}") from error
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = build_metadata(step, batch_size, "torchscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # as above
        torch.jit.save(traced, str(path), _extra_files={METADATA_KEY: to_json(metadata)})
    return path


def export_aoti(model: Any, path: str | Path, *, batch_size: int | None = None, vec_normalize: Any = None) -> Path:
    """Compile ``model``'s deterministic acting step ahead of time with AOTInductor into a ``.pt2``
    package; returns its path.

    The package holds native code for this machine's kind of CPU (the maintained successor of
    TorchScript for deployment: ``torch.export``, then inductor's C++ output): C++ loads it with
    libtorch's ``torch::inductor::AOTIModelPackageLoader`` and calls ``run`` on the inputs, Python with
    :func:`~sb3_rtx.export.metadata.load_aoti`; no Python is needed at run time. Inputs and outputs
    as for :func:`export_onnx`; the metadata is the package's ``"sb3_rtx"`` entry. Compiling takes
    tens of seconds and needs a C++ compiler. Parameters as for :func:`export_onnx`.
    """
    _check_batch_size(batch_size)
    path = Path(path)
    if path.suffix != ".pt2":
        raise ExportError(f"an AOTInductor package is a .pt2 file, got {path.name}")
    step = build_step(model, vec_normalize)
    example, dynamic_shapes = _traced_inputs(step, batch_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = build_metadata(step, batch_size, "aoti")
    with warnings.catch_warnings():
        # the cells cache their oscillator tables as plain attributes; export traces them as constants
        warnings.filterwarnings("ignore", message=".*was assigned during export.*")
        # torch's own notice from inside the packaging (its pytree API), nothing a caller can change
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*", category=FutureWarning)
        # and the one of the TorchScript modules in torch.utils.mkldnn, which inductor's passes import
        warnings.filterwarnings("ignore", message=".*torch.jit.script_method. is deprecated.*", category=DeprecationWarning)
        try:
            program = torch.export.export(step, example, dynamic_shapes=dynamic_shapes)
        except Exception as error:
            raise ExportError(f"torch.export failed for {_describe(step)}: {_first_line(error)}") from error
        try:
            torch._inductor.aoti_compile_and_package(
                program,
                package_path=str(path),
                inductor_configs={"aot_inductor.metadata": {METADATA_KEY: to_json(metadata)}},
            )
        except Exception as error:  # most often: no C++ compiler on this machine
            raise ExportError(f"AOTInductor could not compile {_describe(step)}: {_first_line(error)}") from error
    return path
