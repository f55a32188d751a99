"""ThroughputMonitor: log training samples/s, batches/s and FLOPs/s, as Lightning's ThroughputMonitor."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

from declarative.callbacks.base import Callback

__all__ = ["ThroughputMonitor", "count_flops", "available_flops"]

# Peak dense FLOP/s per device by compute dtype, from the vendors' data sheets (the table Lightning uses);
# MFU is logged only on these devices.
_CUDA_FLOPS = {
    "h100-sxm": {torch.float64: 67e12, torch.float32: 67e12, torch.bfloat16: 1.979e15 / 2, torch.float16: 1.979e15 / 2},
    "h100-pcie": {torch.float64: 51e12, torch.float32: 51e12, torch.bfloat16: 1.513e15 / 2, torch.float16: 1.513e15 / 2},
    "a100": {torch.float64: 19.5e12, torch.float32: 19.5e12, torch.bfloat16: 312e12, torch.float16: 312e12},
    "a10g": {torch.float32: 31.2e12, torch.bfloat16: 125e12, torch.float16: 125e12},
    "v100-sxm": {torch.float64: 7.8e12, torch.float32: 15.7e12, torch.float16: 125e12},
    "v100-pcie": {torch.float64: 7e12, torch.float32: 14e12, torch.float16: 112e12},
    "t4": {torch.float32: 8.1e12, torch.float16: 65e12},
}


class ThroughputMonitor(Callback):
    """Log the training throughput: ``train/samples_per_sec``, ``train/batches_per_sec`` and ``train/flops_per_sec``.

    Rates are rolling averages over the last ``window_size`` batches, logged every ``log_every_n_steps`` steps
    once the window is full; time spent in validation is left out. A batch's sample count is its inputs' first
    dimension (Lightning's ``batch_size_fn``). FLOPs per batch are counted once, by torch's FlopCounterMode on a
    forward and backward pass of the first batch on the meta device (no compute, no effect on training); when
    they cannot be counted, FLOP rates are left out. ``train/device/mfu`` (FLOPs/s over the device's peak) is
    logged on the GPUs whose peak is known. Under several processes, ``train/*_per_sec`` are totals and
    ``train/device/*`` per process. On CUDA each batch ends with a synchronize, to time it truly.

    Args:
        window_size: how many recent batches the rates average over (2 or more). Default: 100
        separator: joins the names' parts (``train/samples_per_sec``). Default: /
    """

    def __init__(self, window_size: int = 100, separator: str = "/"):
        if window_size < 2:
            raise ValueError(f"window_size must be 2 or more (a rate needs two points), got {window_size}")
        self.window_size = window_size
        self.separator = separator
        self.flops_per_batch: int | None = None
        self.available_flops: float | None = None
        self._window: deque[tuple[float, int, int]] = deque(maxlen=window_size)  # (time, batches, samples)
        self._t0 = 0.0
        self._batches = self._samples = 0
        self._paused_at: float | None = None
        self._counted = False

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage == "fit":
            self.available_flops = available_flops(trainer.strategy.root_device, compute_dtype(trainer.precision.name))

    def on_train_start(self, trainer: Any, model: Any) -> None:
        self._window.clear()
        self._batches = self._samples = 0
        self._t0 = time.perf_counter()

    def on_validation_start(self, trainer: Any, model: Any) -> None:
        if not trainer.sanity_checking:
            self._paused_at = time.perf_counter()

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        if self._paused_at is not None:  # validation's time is not training's
            self._t0 += time.perf_counter() - self._paused_at
            self._paused_at = None

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        device = trainer.strategy.root_device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - self._t0
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        self._batches += 1
        self._samples += batch_size(inputs)
        self._window.append((elapsed, self._batches, self._samples))
        if not self._counted:
            self._counted = True
            self.flops_per_batch = count_flops(trainer.strategy.unwrap(model), inputs)
            if self.flops_per_batch is None:
                trainer.print("ThroughputMonitor: torch cannot count this model's FLOPs; FLOP rates are left out")
        if trainer.log_step_due:
            trainer.log(self.compute(trainer.world_size))

    def compute(self, world_size: int = 1) -> dict[str, float]:
        """Lightning's Throughput.compute, named under `train`."""
        sep = self.separator
        elapsed, batches, samples = self._window[-1]
        metrics: dict[str, float] = {"time": elapsed, "batches": batches, "samples": samples}
        if len(self._window) == self.window_size:
            span = self._window[-1][0] - self._window[0][0]
            device_batches = (self._window[-1][1] - self._window[0][1]) / span
            device_samples = (self._window[-1][2] - self._window[0][2]) / span
            metrics.update({"batches_per_sec": device_batches * world_size,
                            "samples_per_sec": device_samples * world_size})
            if world_size > 1:
                metrics.update({f"device{sep}batches_per_sec": device_batches,
                                f"device{sep}samples_per_sec": device_samples})
            if self.flops_per_batch:
                device_flops = self.flops_per_batch * device_batches
                metrics["flops_per_sec"] = device_flops * world_size
                if world_size > 1:
                    metrics[f"device{sep}flops_per_sec"] = device_flops
                if self.available_flops:
                    metrics[f"device{sep}mfu"] = device_flops / self.available_flops
        return {f"train{sep}{name}": float(value) for name, value in metrics.items()}


def batch_size(inputs: Any) -> int:
    """The first dimension of the batch's first tensor (its inputs may be a tensor, a tuple or a mapping)."""
    tensors = [leaf for leaf in tree_flatten(inputs)[0] if isinstance(leaf, torch.Tensor) and leaf.dim()]
    return int(tensors[0].shape[0]) if tensors else 1


def count_flops(module: torch.nn.Module, inputs: Any) -> int | None:
    """FLOPs of one forward and backward pass of `module` on `inputs`, counted on the meta device in eval mode
    (nothing runs, nothing changes: parameters, buffers and generators stay as they were); None when torch cannot
    count them."""
    from torch.utils.flop_counter import FlopCounterMode

    def meta(tensor: Any) -> Any:
        return torch.empty_like(tensor, device="meta") if isinstance(tensor, torch.Tensor) else tensor

    was_training = module.training
    module.eval()  # no collective on meta tensors (SyncBatchNorm syncs only in training); dropout's FLOPs are few
    try:
        parameters = {name: torch.empty_like(p, device="meta", requires_grad=p.requires_grad)
                      for name, p in module.named_parameters()}
        buffers = {name: meta(b) for name, b in module.named_buffers()}
        with FlopCounterMode(display=False) as counter:
            outputs = torch.func.functional_call(module, {**parameters, **buffers}, (tree_map(meta, inputs),))
            leaves = [t for t in tree_flatten(outputs)[0] if isinstance(t, torch.Tensor) and t.requires_grad]
            trainable = [p for p in parameters.values() if p.requires_grad]
            if leaves and trainable:
                torch.autograd.grad(sum(t.float().sum() for t in leaves), trainable, allow_unused=True)
        return int(counter.get_total_flops())
    except Exception:  # a model torch cannot trace on the meta device: no FLOP rates, training goes on
        return None
    finally:
        module.train(was_training)


def compute_dtype(precision_name: str) -> torch.dtype:
    if "bf16" in precision_name:
        return torch.bfloat16
    if precision_name.startswith("16"):
        return torch.float16
    return torch.float64 if precision_name.startswith("64") else torch.float32


def available_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """The device's peak FLOP/s for `dtype`, when the table knows the device (CUDA GPUs only)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).lower()
    chip = ("h100-sxm" if "h100" in name and "hbm3" in name else "h100-pcie" if "h100" in name
            else next((key for key in ("a100", "a10g", "v100-sxm", "v100-pcie", "t4") if key in name), None))
    return _CUDA_FLOPS.get(chip, {}).get(dtype) if chip else None
