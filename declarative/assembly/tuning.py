"""Tuning before training: the LearningRateFinder and BatchSizeFinder a spec lists, run in list order.

Lightning runs them at fit's start, before the sanity check. Here they run at that point of the run but
before the LR scheduler is built: a scheduler reads the optimizer's rates when it is made (initial_lr,
base_lrs, OneCycleLR's max_lr), and fills its length in from the number of training batches, so it is
built from what the finders chose.

Each runs its steps with a Trainer of its own on the run's model, optimizer, strategy and precision (the
run's loop: accumulation, clipping, mixed precision), without validation, callbacks, loggers or
checkpoints; then the weights, the optimizer's and the precision's states, every generator and the
training batches' epoch go back to what they were. The fit that follows is the fit of the spec with the
chosen values written in. They are written in the spec the run records (spec.yaml, hparams, every
checkpoint), so that the record alone trains the same way, and in results.json under "tuned".
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import tempfile
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import torch

from declarative.callbacks.batch_size_finder import BatchSizeFinder, search_batch_size
from declarative.callbacks.lr_finder import CURVE_FILE, LearningRateFinder, LRCurve, suggestion
from declarative.spec.config import Component, Spec
from declarative.training.errors import EngineError, MisconfigurationError
from declarative.training.metrics import StageMetrics
from declarative.training.resume import load_rng_state, rng_state

__all__ = ["tune", "tuned_results", "adopt_tuned", "with_lr", "with_batch_size"]

FINDERS = (LearningRateFinder, BatchSizeFinder)


class _SearchOver(Exception):
    """Raised by the LR test's recorder to end the test at the step where the loss diverged."""


def tune(run: Any, optimizer: torch.optim.Optimizer, *, resuming: bool = False) -> Any:
    """Run the finders among the run's callbacks; the Assembly with what they chose (spec, data), and the
    optimizer set to it. A fast_dev_run skips them (as Lightning's), and so does a resumed run: its
    checkpoint's spec holds what they chose (see `adopt_tuned`)."""
    finders = [(index, cb) for index, cb in enumerate(run.trainer.callbacks) if isinstance(cb, FINDERS)]
    if not finders:
        return run
    trainer = run.trainer
    if trainer.settings.fast_dev_batches or resuming:
        reason = "fast_dev_run is enabled" if not resuming else "a resumed run keeps what its first run chose"
        for _, finder in finders:
            trainer.print(f"Skipping {type(finder).__name__} since {reason}.")
        return run
    try:
        for index, finder in finders:
            if isinstance(finder, LearningRateFinder):
                run = _find_lr(run, optimizer, finder, index)
            else:
                run = _find_batch_size(run, optimizer, finder, index)
    except EngineError as exc:
        raise run.locator.error(exc) from None
    from declarative.assembly.record import checkpoint_extras

    trainer.hparams = run.spec.to_dict()  # what the run records: the spec with the chosen values
    trainer.checkpoint_extras = checkpoint_extras(run.spec)
    run.locator.spec = run.spec
    return run


def tuned_results(callbacks: list[Any]) -> dict[str, Any]:
    """results.json's "tuned": what each finder chose, e.g. {"lr": {"suggestion": ..., "applied": true, ...}}."""
    tuned = {}
    for callback in callbacks:
        if isinstance(callback, LearningRateFinder) and callback.result:
            tuned["lr"] = dict(callback.result)
        elif isinstance(callback, BatchSizeFinder) and callback.result:
            tuned["batch_size"] = dict(callback.result)
    return {"tuned": tuned} if tuned else {}


def adopt_tuned(spec: Spec, contents: dict[str, Any]) -> Spec:
    """A spec resuming a checkpoint of a run whose finders chose values: the spec with those values, as the
    checkpoint's spec has them (the finders do not run again on a resume)."""
    states = contents.get("callbacks") or {}
    chosen_lr = states.get(LearningRateFinder.__qualname__, {}).get("result", {})
    # The spec as first written (not the checkpoint's own, which `dtrain resume` runs: it has the rate already)
    if chosen_lr.get("applied") and spec.optimizer.kwargs.get("lr") != chosen_lr["suggestion"]:
        spec = with_lr(spec, chosen_lr["suggestion"], chosen_lr["initial_lr"])
    chosen_size = states.get(BatchSizeFinder.__qualname__, {}).get("result", {})
    if chosen_size.get("applied"):
        spec = dataclasses.replace(spec, data=dataclasses.replace(spec.data, batch_size=chosen_size["batch_size"]))
    return spec


# ----------------------------------------------------------------------------------------------------
# The LR range test


class _LRRecorder:
    """The range test's callback: records each optimizer step's loss (every process's mean, read where the
    loop logs it) against the step's rate, and ends the test when the curve says so."""

    def __init__(self, finder: LearningRateFinder, curve: LRCurve):
        self.finder, self.curve = finder, curve

    def on_train_batch_end(self, trainer: Any, model: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not trainer.log_step_due:  # an accumulating batch: no step yet
            return
        loss = trainer.callback_metrics["train/loss_step"]
        if self.curve.add(self.finder.lr_at(trainer.global_step - 1), loss):
            raise _SearchOver


def _find_lr(run: Any, optimizer: torch.optim.Optimizer, finder: LearningRateFinder, index: int) -> Any:
    reference = optimizer.defaults.get("lr")
    if not isinstance(reference, (int, float)) or reference <= 0:
        raise MisconfigurationError(f"LearningRateFinder needs an optimizer with a learning rate; "
                                    f"{type(optimizer).__name__} has lr={reference!r}", ("callbacks", index))
    curve = LRCurve(finder.early_stop_threshold)
    with _state_kept(run, optimizer):
        for group in optimizer.param_groups:  # each group keeps its ratio to the optimizer's rate
            group["lr"] = group["lr"] / reference * finder.min_lr
            group.pop("initial_lr", None)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: finder.lr_at(step) / finder.min_lr)
        try:
            _train_steps(run, optimizer, finder.num_training_steps, run.data.train, [_LRRecorder(finder, curve)],
                         schedule)
        except _SearchOver:
            pass
    if not curve.lrs:  # limit_train_batches: 0, say: no step to measure
        run.trainer.print(f"LearningRateFinder: no training step to test; the run keeps lr {reference:g}")
        return run
    point = suggestion(curve.lrs, curve.losses)
    lr = run.strategy.broadcast(curve.lrs[point] if point is not None else None)
    finder.curve = curve
    stopped = len(curve.lrs) < finder.num_training_steps
    found = (f"LearningRateFinder: {len(curve.lrs)} steps from lr {finder.min_lr:g} to {curve.lrs[-1]:g}"
             + (" (stopped early: the loss diverged)" if stopped else "") + f"; curve in {CURVE_FILE}")
    if lr is None:
        run.trainer.print(found + " — too few points for a suggestion (Lightning skips the first 10 and the last "
                                  f"one): the run keeps lr {reference:g}; raise num_training_steps")
        finder.result = {"suggestion": None, "applied": False, "initial_lr": reference, "steps": len(curve.lrs),
                         "curve": CURVE_FILE}
        return run
    applied = finder.update_attr
    run.trainer.print(found + f"; steepest loss descent at lr {lr:.4g} — "
                      + (f"training with it (was {reference:g})" if applied else
                         f"not applied (update_attr: false), the run keeps lr {reference:g}"))
    finder.result = {"suggestion": lr, "applied": applied, "initial_lr": reference, "steps": len(curve.lrs),
                     "curve": CURVE_FILE}
    if not applied:
        return run
    scaled = _scaler(lr, reference)
    for group in optimizer.param_groups:
        group["lr"] = scaled(group["lr"])
    optimizer.defaults["lr"] = lr
    return dataclasses.replace(run, spec=with_lr(run.spec, lr, reference))


def _scaler(lr: float, reference: float) -> Callable[[float], float]:
    """A rate of the run, moved as the optimizer's moves from `reference` to `lr` (its own ratio kept); the
    same arithmetic on the optimizer's groups and on the spec's, so the recorded spec builds the same rates."""
    return lambda value: lr if value == reference else value * (lr / reference)


def with_lr(spec: Spec, lr: float, reference: float) -> Spec:
    """The spec training at `lr` instead of `reference`: the optimizer's `lr`, each param group's own rate
    (scaled alike) and OneCycleLR's `max_lr` (the rate it peaks at: `lr`; a per-group list scaled alike)."""
    scaled = _scaler(lr, reference)
    optimizer = spec.optimizer
    wiring = dict(optimizer.wiring)
    if wiring.get("param_groups"):
        wiring["param_groups"] = [{**group, "lr": scaled(group["lr"])} if "lr" in group else group
                                  for group in wiring["param_groups"]]
    optimizer = dataclasses.replace(optimizer, kwargs={**optimizer.kwargs, "lr": lr}, wiring=wiring)
    scheduler = spec.scheduler
    if scheduler is not None:
        scheduler = dataclasses.replace(scheduler, scheduler=_peak_at(scheduler.scheduler, lr, scaled))
    return dataclasses.replace(spec, optimizer=optimizer, scheduler=scheduler)


def _peak_at(component: Component, lr: float, scaled: Callable[[float], float]) -> Component:
    """OneCycleLR's max_lr set to `lr`, in the scheduler or in a chain's schedulers."""
    kwargs = component.kwargs
    if component.name == "OneCycleLR" and "max_lr" in kwargs:
        peak = kwargs["max_lr"]
        peak = [scaled(v) for v in peak] if isinstance(peak, list) else lr
        return dataclasses.replace(component, kwargs={**kwargs, "max_lr": peak})
    if isinstance(kwargs.get("schedulers"), list):
        where = component.path + (component.name, "schedulers")
        parts = [_peak_at(Component.parse(item, where + (i,)), lr, scaled).to_yaml()
                 for i, item in enumerate(kwargs["schedulers"])]
        return dataclasses.replace(component, kwargs={**kwargs, "schedulers": parts})
    return component


# ----------------------------------------------------------------------------------------------------
# The batch size search


def _find_batch_size(run: Any, optimizer: torch.optim.Optimizer, finder: BatchSizeFinder, index: int) -> Any:
    if run.strategy.world_size > 1:
        raise MisconfigurationError("BatchSizeFinder does not run in a run of several processes (as Lightning's, "
                                    "it is not supported with distributed strategies) — find the size in a run of "
                                    "one process, then set data.batch_size", ("callbacks", index))
    train = run.data.train
    was = run.spec.data.batch_size

    def fits(size: int) -> bool:
        batches = with_batch_size(train, size)
        if len(batches) == 0:  # drop_last with fewer samples than the size: no batch to train on
            return False
        try:
            _train_steps(run, optimizer, finder.steps_per_trial, batches, [], None, limit_train_batches=1.0)
            return True
        except Exception as exc:  # noqa: BLE001 — only running out of memory is an answer; the rest is raised
            if not _out_of_memory(exc):
                raise
            optimizer.zero_grad(set_to_none=True)
            _free_memory(run.strategy.root_device)
            return False

    with _state_kept(run, optimizer):
        try:
            size = search_batch_size(finder, was, train.num_samples, fits)
        except MemoryError:
            raise MisconfigurationError("BatchSizeFinder: even a batch of one sample runs out of memory",
                                        ("callbacks", index)) from None
    _free_memory(run.strategy.root_device)
    finder.optimal_batch_size = size
    tried = ", ".join(f"{n}" + ("" if ok else " (does not fit)") for n, ok in finder.trials)
    if finder.mode == "binsearch" and finder.margin > 0:
        note = f", {finder.margin:.0%} below the largest that fitted"
    elif size == finder.max_val and (size, True) not in finder.trials:
        note = ", max_val (not tried, as Lightning's search stops there)"
    else:
        note = ""
    run.trainer.print(f"BatchSizeFinder: tried {tried} → batch_size {size} (was {was}){note}")
    finder.result = {"batch_size": size, "applied": True, "initial": was,
                     "trials": [{"batch_size": n, "fits": ok} for n, ok in finder.trials]}
    spec = dataclasses.replace(run.spec, data=dataclasses.replace(run.spec.data, batch_size=size))
    data = run.data
    resized = {"train": with_batch_size(data.train, size)}
    if spec.data.eval_batch_size is None:  # validation and test batches follow batch_size
        resized.update({role: with_batch_size(getattr(data, role), size) for role in ("val", "test")
                        if getattr(data, role) is not None})
    return dataclasses.replace(run, spec=spec, data=dataclasses.replace(data, **resized))


def with_batch_size(batches: Any, size: int) -> Any:
    """The same batches (data, order, transforms, process share) at another batch size."""
    from declarative.data.batches import Batches
    from declarative.data.loading import LoaderBatches
    from declarative.data.mixing import MixedBatches

    if isinstance(batches, MixedBatches):
        return MixedBatches(with_batch_size(batches.batches, size), batches.transform)
    if isinstance(batches, Batches):
        resized = copy.copy(batches)
        resized.batch_size = size
        return resized
    if isinstance(batches, LoaderBatches):
        sampler = batches.sampler
        return LoaderBatches(batches.dataset, size, device=batches.device, settings=batches.settings,
                             transform=batches.transform, shuffle=sampler.shuffle, seed=batches.seed,
                             rank=batches.rank, num_replicas=sampler.num_replicas, drop_last=batches.loader.drop_last)
    raise TypeError(f"BatchSizeFinder cannot resize {type(batches).__name__}")


def _out_of_memory(exc: BaseException) -> bool:
    """torch's OutOfMemoryError, or the RuntimeErrors Lightning takes for one (CUDA, cuDNN, the CPU
    allocator), raised as they are or behind the loop's StepError."""
    for error in (exc, exc.__cause__):
        if isinstance(error, torch.OutOfMemoryError):
            return True
        if isinstance(error, RuntimeError) and len(error.args) == 1 and isinstance(error.args[0], str):
            text = error.args[0]
            if ("CUDA" in text and "out of memory" in text) or "CUDNN_STATUS_NOT_SUPPORTED" in text \
                    or "DefaultCPUAllocator: can't allocate memory" in text:
                return True
    return False


def _free_memory(device: torch.device) -> None:
    """Lightning's garbage_collection_cuda: what a failed trial held goes back to the GPU's allocator (a full
    collection takes a second in a large process, so only where it frees device memory)."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------------
# Shared: training steps on the run's pieces, and putting everything back


def _train_steps(run: Any, optimizer: torch.optim.Optimizer, steps: int, train: Any, callbacks: list[Any],
                 scheduler: Any, **settings: Any) -> None:
    """`steps` optimizer steps of the run's loop over `train` (epoch after epoch when it is short), with the
    run's strategy, precision, accumulation, clipping and training batches (overfit_batches' too), and
    nothing else: no validation, no callbacks but `callbacks`, no loggers, no profiler, no checkpoints; the
    step loss is read at every step."""
    from declarative.training import preemption
    from declarative.training.trainer import STAGES, LRSchedulerConfig, Trainer

    base = run.trainer.settings
    settings = dataclasses.replace(base, **{
        "max_epochs": -1, "max_steps": steps, "min_epochs": None, "min_steps": None, "max_time": None,
        "num_sanity_val_steps": 0, "limit_val_batches": 0, "check_val_every_n_epoch": 1, "val_check_interval": 1.0,
        "log_every_n_steps": 1, "check_finite_loss": False, "enable_progress_bar": False,
        "enable_checkpointing": False, "profiler": None, "overfit_batches": 0.0,
        "limit_train_batches": base.overfit_batches or base.limit_train_batches, **settings})
    with tempfile.TemporaryDirectory() as folder:  # where a signal's checkpoint would go: nowhere kept
        trainer = Trainer(settings, strategy=run.strategy, precision=run.plugins.precision,
                          metrics={stage: StageMetrics(stage, {}) for stage in STAGES}, callbacks=callbacks,
                          console=run.trainer.console, root_dir=folder)
        config = LRSchedulerConfig(scheduler, interval="step") if scheduler is not None else None
        try:
            trainer.fit(run.model, run.loss_fn, optimizer, SimpleNamespace(train=train, val=None, test=None), config)
        except preemption.TrainingInterrupted:
            raise KeyboardInterrupt from None  # before training: nothing to resume


@contextmanager
def _state_kept(run: Any, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Whatever trains inside, the model's weights and buffers, the optimizer's and the precision's states,
    every generator and the training batches' epoch are as before, bit for bit, afterwards."""
    model, precision, train = run.model, run.plugins.precision, run.data.train
    weights = _snapshot(model.state_dict())
    optimizer_state = _snapshot(optimizer.state_dict())
    precision_state = copy.deepcopy(precision.state_dict())
    generators = rng_state()
    epoch = getattr(train, "epoch", 0)
    training = model.training
    try:
        yield
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(weights)
        optimizer.load_state_dict(optimizer_state)
        precision.load_state_dict(precision_state)
        load_rng_state(generators)
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        model.train(training)


def _snapshot(value: Any) -> Any:
    """A copy of a state dict that training cannot change: tensors copied to the CPU (a batch size search
    should not find less room on the device for the copy), sharded ones (DTensor) cloned where they are."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return value.to("cpu", copy=True) if type(value) is torch.Tensor else value.clone()
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_snapshot(item) for item in value)
    return copy.deepcopy(value)
