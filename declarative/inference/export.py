"""`dtrain export`: a checkpoint's model as a file that runs without dtrain (and, for ONNX, without torch).

    pt2          torch.export's ExportedProgram (torch.export.save), the batch dimension dynamic
    onnx         torch.onnx's dynamo exporter (needs `pip install -e '.[onnx]'`), checked with onnxruntime
                 when it is installed
    torchscript  torch.jit.trace, saved with torch.jit.save

The exported module takes the raw samples the training source gave (e.g. uint8 images) when the
evaluation transforms are all tensor math (ToImage, ToDtype, Normalize, Resize, CenterCrop): they
go into the module, so a user feeds it what they have. `--no-preprocess` leaves them out: the module
then takes what the model itself takes. The task, class names and whether preprocessing is inside
travel as metadata (`dtrain.json`: extra files of pt2 and TorchScript, metadata props of ONNX).

Every export is checked: the exported file is loaded back and run on a batch of another size than
the one it was traced with, and its outputs compared with the checkpoint's model (through the
same transforms `dtrain predict` applies). A layer that cannot be exported is a located error.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from declarative.errors import Location, Problem, SpecError

__all__ = ["FORMATS", "Exported", "export_trained", "preprocessing"]

FORMATS = ("pt2", "onnx", "torchscript")
SUFFIXES = {"pt2": ".pt2", "onnx": ".onnx", "torchscript": ".pt"}
METADATA = "dtrain.json"
# The batch the module is traced with, and the other one it is checked on (a dynamic batch dim must hold).
_TRACE_BATCH, _CHECK_BATCH = 2, 3
# Outputs within this of the model's (relative to their scale) pass the check.
_TOLERANCE = 1e-4


def _tensor_math(transform: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A v2 eval transform as a plain function of a tensor batch; None for one that is not tensor math."""
    if isinstance(transform, (v2.ToImage, v2.ToPureTensor)):
        return lambda x: x
    if isinstance(transform, v2.ToDtype) and isinstance(transform.dtype, torch.dtype):
        return functools.partial(TF.to_dtype, dtype=transform.dtype, scale=transform.scale)
    if isinstance(transform, v2.Normalize):
        return functools.partial(TF.normalize, mean=list(transform.mean), std=list(transform.std))
    if isinstance(transform, v2.Resize):
        return functools.partial(TF.resize, size=transform.size, interpolation=transform.interpolation,
                                 max_size=transform.max_size, antialias=transform.antialias)
    if isinstance(transform, v2.CenterCrop):
        return functools.partial(TF.center_crop, output_size=list(transform.size))
    return None


class _Preprocess(nn.Module):
    """The evaluation transforms, in order, as tensor math that exports."""

    def __init__(self, steps: list[Callable[[torch.Tensor], torch.Tensor]]):
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x


class _WithPreprocess(nn.Module):
    def __init__(self, preprocess: nn.Module, model: nn.Module):
        super().__init__()
        self.preprocess = preprocess
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(x))


def preprocessing(trained) -> tuple[_Preprocess | None, str]:
    """The eval transforms as an exportable module, or None and why not (a transform that is not tensor
    math, or a checkpoint that does not record the raw samples' shape)."""
    steps = []
    for component, transform in zip(trained.spec.data.transforms, trained.transforms):
        step = _tensor_math(transform)
        if step is None:
            return None, f"{component.name} is not tensor math dtrain exports"
        steps.append(step)
    if steps and "raw_input" not in trained.vocabulary:
        return None, "the checkpoint does not record the shape of the raw samples"
    return (_Preprocess(steps) if steps else None), ""


@dataclass
class Exported:
    path: Path
    format: str
    preprocess: bool  # the eval transforms are inside the exported module
    input_shape: list[int]  # one sample, without the batch dim
    input_dtype: str
    max_abs_diff: float


def _error(where: str, message: str) -> SpecError:
    return SpecError(Problem(Location(where), message))


def _example(shape: tuple[int, ...], dtype: torch.dtype, batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.uint8:
        return torch.randint(0, 256, (batch, *shape), dtype=dtype, generator=generator)
    if not dtype.is_floating_point:
        return torch.randint(0, 2, (batch, *shape), dtype=dtype, generator=generator)
    return torch.rand((batch, *shape), generator=generator).to(dtype)


def _reason(exc: BaseException) -> str:
    """The first line of the innermost cause: torch's exporters wrap the reason in advice on filing issues."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # the ONNX exporter colours its messages
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _located_failure(trained, fmt: str, export_one: Callable[[nn.Module, tuple], Any], x: torch.Tensor,
                     exc: BaseException) -> SpecError:
    """The first item of model.layers that cannot be exported alone, as a located error with torch's reason;
    the whole model's reason when each exports alone."""
    captured: dict[int, tuple] = {}

    def keep(index: int) -> Callable:
        def hook(module: nn.Module, args: tuple, output: Any) -> None:  # None: the output stays as it is
            captured.setdefault(index, args)
        return hook

    hooks = [module.register_forward_hook(keep(i)) for i, (_, module) in enumerate(trained.layers)]
    try:
        with torch.no_grad():
            trained.model(trained.preprocess(x))
    finally:
        for hook in hooks:
            hook.remove()
    for i, (component, module) in enumerate(trained.layers):
        if i not in captured:
            continue
        try:
            export_one(module, captured[i])
        except Exception as layer_exc:  # torch's exporters raise many kinds; each says why
            return trained.spec.error(component.path, f"{component.name} (layer {i}) cannot be exported to "
                                                      f"{fmt}: {_reason(layer_exc)}")
    return _error(trained.origin, f"the model cannot be exported to {fmt}: {_reason(exc)}")


def _metadata(trained, preprocess: bool, shape: list[int], dtype: str) -> str:
    return json.dumps({"task": trained.task, "class_names": trained.class_names, "preprocess": preprocess,
                       "input_shape": shape, "input_dtype": dtype, "name": trained.spec.name})


def _export_pt2(module: nn.Module, x: torch.Tensor, path: Path, metadata: str) -> Callable:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(module, (x,), dynamic_shapes=({0: batch},))
    torch.export.save(program, path, extra_files={METADATA: metadata})
    loaded = torch.export.load(path)
    return loaded.module()


def _export_torchscript(module: nn.Module, x: torch.Tensor, path: Path, metadata: str) -> Callable:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notes: the user asked for it
        traced = torch.jit.trace(module, (x,), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA: metadata})
        return torch.jit.load(str(path))


def onnx_missing() -> str | None:
    """Why ONNX export cannot run here, or None when it can."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        return (f"ONNX export needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                f"installed: pip install -e '.[onnx]' (or pip install onnx onnxscript onnxruntime)")
    return None


def _export_onnx(module: nn.Module, x: torch.Tensor, path: Path, metadata: str) -> Callable:
    import onnx

    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(module, (x,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False,
                                report=False)
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA, metadata
    onnx.save(proto, str(path))
    try:
        import onnxruntime
    except ImportError:  # no runtime to check the file with: check what was exported, in torch
        def run(batch_in: torch.Tensor) -> torch.Tensor:
            out = program(batch_in)
            return out[0] if isinstance(out, (list, tuple)) else out
        return run
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch_in: torch.from_numpy(session.run(None, {name: batch_in.cpu().numpy()})[0])


_EXPORTERS = {"pt2": _export_pt2, "torchscript": _export_torchscript, "onnx": _export_onnx}


def export_trained(trained, fmt: str = "pt2", output: Path | None = None, *, preprocess: bool = True) -> Exported:
    """Export `trained` (declarative.assembly.trained.Trained) and check the file against its model; any
    failure is a located SpecError."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt}")
    if fmt == "onnx" and (why := onnx_missing()):
        raise _error(trained.origin, why)
    output = Path(output) if output is not None else Path(trained.origin).with_suffix(SUFFIXES[fmt])
    model = trained.model.eval().cpu()
    pre, _ = preprocessing(trained) if preprocess else (None, "")
    if pre is not None:
        raw = trained.vocabulary["raw_input"]
        shape, dtype = tuple(raw["shape"]), getattr(torch, raw["dtype"])
        module: nn.Module = _WithPreprocess(pre, model).eval()
    else:
        info = trained.spec.model.data
        shape, dtype = tuple(trained.spec.model.input), info.input_dtype if info is not None else torch.float32
        module = model
    x = _example(shape, dtype, _TRACE_BATCH, seed=0)
    check = _example(shape, dtype, _CHECK_BATCH, seed=1)
    metadata = _metadata(trained, pre is not None, list(shape), str(dtype).removeprefix("torch."))
    exporter = _EXPORTERS[fmt]
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            exported = exporter(module, x, output, metadata)
    except Exception as exc:  # torch's exporters raise many kinds; find the layer at fault
        output.unlink(missing_ok=True)

        def export_one(layer: nn.Module, args: tuple) -> Any:
            scratch = output.with_name(f".{output.name}.layer")
            try:
                return exporter(layer, args[0], scratch, "{}") if len(args) == 1 else \
                    torch.export.export(layer, args)
            finally:
                scratch.unlink(missing_ok=True)

        raise _located_failure(trained, fmt, export_one, x, exc) from None
    with torch.no_grad():
        expected = model(trained.preprocess(check) if pre is not None else check).float()
        got = torch.as_tensor(exported(check)).float()
    if got.shape != expected.shape:
        raise _error(str(output), f"the exported {fmt} module gives outputs of shape {list(got.shape)} for a batch "
                                  f"of {_CHECK_BATCH}, but the model gives {list(expected.shape)}")
    diff = float((got - expected).abs().max()) if got.numel() else 0.0
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    if not diff <= _TOLERANCE * max(1.0, scale):
        raise _error(str(output), f"the exported {fmt} module's outputs differ from the model's by up to {diff:.3g} "
                                  f"(allowed: {_TOLERANCE * max(1.0, scale):.3g})")
    return Exported(output, fmt, pre is not None, list(shape), str(dtype).removeprefix("torch."), diff)
