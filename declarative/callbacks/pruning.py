"""ModelPruning: prune the model's weights during training with torch.nn.utils.prune, as Lightning's."""

from __future__ import annotations

import copy
import fnmatch
from typing import Any, Literal, Optional, Union

import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from declarative.callbacks.base import Callback
from declarative.errors import did_you_mean
from declarative.training.errors import MisconfigurationError

__all__ = ["ModelPruning", "AMOUNT_SCHEMA"]

PRUNING_FUNCTIONS = {"l1_unstructured": torch_prune.l1_unstructured, "random_unstructured": torch_prune.random_unstructured,
                     "ln_structured": torch_prune.ln_structured, "random_structured": torch_prune.random_structured}
PRUNING_METHODS = {"l1_unstructured": torch_prune.L1Unstructured, "random_unstructured": torch_prune.RandomUnstructured,
                   "ln_structured": torch_prune.LnStructured, "random_structured": torch_prune.RandomStructured}
PARAMETER_NAMES = ("weight", "bias")
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

_AMOUNT = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "number", "minimum": 0, "maximum": 1}]}
AMOUNT_SCHEMA = {
    "if": {"type": "number"},
    "then": _AMOUNT,
    "else": {"type": "object", "additionalProperties": _AMOUNT,
             "propertyNames": {"pattern": "^[0-9]+$", "x-pattern": "is not an epoch: keys are epochs, 0 or more"}},
    "default": 0.5,
    "description": "What to prune at each pruning: a fraction of the parameters (float, 0-1) or a count (int); "
                   "or {epoch: amount} to prune only at those epochs."}

Amount = Union[int, float]


class ModelPruning(Callback):
    """Prune the model's parameters during training with torch.nn.utils.prune, as Lightning's ModelPruning.

    At each training epoch's end (or validation's, with ``prune_on_train_epoch_end: false``), ``amount`` of the
    parameters named in ``parameter_names`` of every layer is pruned (set to zero by a mask), the amount counted
    among those still unpruned. With the lottery ticket hypothesis, the unpruned weights are then reset to their
    values at the start of training. Checkpoints hold plain weights (``make_pruning_permanent``) that the model
    loads as it is; the masks are kept in the callback's state, so a resumed run prunes on exactly.

    Args:
        pruning_fn: torch's pruning function: ``l1_unstructured``, ``random_unstructured``, ``ln_structured`` or
            ``random_structured`` (the last two with ``use_global_unstructured: false`` and ``pruning_dim``).
        parameters_to_prune: which parameters, as globs over their names in the model (``layers.0.weight``,
            ``layers.2.*``; Lightning takes (module, name) pairs); none: every layer's. Default: None
        parameter_names: which parameters of each layer to prune, ``weight`` and/or ``bias``.
            Default: None (both)
        use_global_unstructured: rank the parameters of all layers together (one global threshold) rather than
            pruning each tensor by ``amount``. Default: True
        amount: the fraction (float, 0-1) or count (int) of parameters to prune each time; {epoch: amount}
            prunes only at those epochs (0-based). Default: 0.5
        apply_pruning: prune at all (false: the callback does nothing). Default: True
        make_pruning_permanent: remove torch's pruning reparametrization at the end of training and in every
            checkpoint (plain ``weight`` tensors with zeros); false keeps ``weight_orig`` and ``weight_mask`` in
            checkpoints, as torch leaves them. Default: True
        use_lottery_ticket_hypothesis: after each pruning, reset the unpruned parameters to their values at the
            start of training (arXiv:1803.03635). Default: True
        resample_parameters: with the lottery ticket hypothesis, draw new initial values instead. Default: False
        pruning_dim: the dimension structured pruning removes slices of. Default: None
        pruning_norm: the norm ``ln_structured`` ranks slices by (1, 2, ...). Default: None
        verbose: 1 prints the overall sparsity after each pruning, 2 also each parameter's. Default: 0
        prune_on_train_epoch_end: prune at the training epoch's end; false: after validation. Default: True
    """

    def __init__(self, pruning_fn: Literal["l1_unstructured", "random_unstructured", "ln_structured",
                                           "random_structured"],
                 parameters_to_prune: Optional[list[str]] = None,
                 parameter_names: Optional[list[Literal["weight", "bias"]]] = None,
                 use_global_unstructured: bool = True, amount: Union[Amount, dict] = 0.5, apply_pruning: bool = True,
                 make_pruning_permanent: bool = True, use_lottery_ticket_hypothesis: bool = True,
                 resample_parameters: bool = False, pruning_dim: Optional[int] = None,
                 pruning_norm: Optional[int] = None, verbose: Literal[0, 1, 2] = 0,
                 prune_on_train_epoch_end: bool = True):
        if pruning_fn not in PRUNING_FUNCTIONS:
            raise ValueError(f"pruning_fn {pruning_fn!r} is not one of torch's: {', '.join(PRUNING_FUNCTIONS)}")
        names = list(parameter_names or PARAMETER_NAMES)
        if any(name not in PARAMETER_NAMES for name in names):
            raise ValueError(f"parameter_names may hold 'weight' and 'bias', got {names}")
        self._kwargs: dict[str, Any] = {}
        if pruning_fn.endswith("_structured"):
            if use_global_unstructured:
                raise ValueError(f"{pruning_fn} is structured: it needs use_global_unstructured: false (only "
                                 "unstructured pruning ranks all layers together)")
            if pruning_dim is None:
                raise ValueError(f"{pruning_fn} needs pruning_dim: the dimension whose slices it removes")
            if pruning_fn == "ln_structured":
                if pruning_norm is None:
                    raise ValueError("ln_structured needs pruning_norm, e.g. 1 or 2")
                self._kwargs["n"] = pruning_norm
            self._kwargs["dim"] = pruning_dim
        self.pruning_fn = pruning_fn
        self._parameter_names = names
        self._patterns = list(parameters_to_prune) if parameters_to_prune else None
        self._use_global_unstructured = use_global_unstructured
        self.amount = _schedule(amount) if isinstance(amount, dict) else _checked(amount)
        self._apply_pruning = apply_pruning
        self._make_pruning_permanent = make_pruning_permanent
        self._use_lottery_ticket_hypothesis = use_lottery_ticket_hypothesis
        self._resample_parameters = resample_parameters
        self._verbose = verbose
        self._prune_on_train_epoch_end = prune_on_train_epoch_end
        self._parameters_to_prune: list[tuple[str, nn.Module, str]] = []  # (module name, module, parameter)
        self._original: dict[str, torch.Tensor] = {}  # "layer.weight" → its value at the start of training
        self._layers: dict[str, nn.Module] = {}  # resample_parameters: each layer as it was built
        self._restored: dict[str, Any] = {}  # a resumed checkpoint's state, applied once the weights are loaded

    # -- which parameters ----------------------------------------------------------------------------------

    def setup(self, trainer: Any, model: Any, stage: str) -> None:
        if stage != "fit":
            return
        if trainer.strategy.name == "fsdp":
            raise MisconfigurationError("ModelPruning prunes whole tensors: it works under the single_device and ddp "
                                        "strategies, not fsdp's shards")
        root = trainer.strategy.unwrap(model)
        self._parameters_to_prune = [
            (module_name, module, name) for name in self._parameter_names
            for module_name, module in root.named_modules()
            if module is not root and not isinstance(module, CONTAINERS)
            and isinstance(getattr(module, name, None), nn.Parameter)]
        if self._patterns is not None:
            self._parameters_to_prune = self._selected(self._parameters_to_prune)
        if not self._parameters_to_prune:
            raise MisconfigurationError(f"ModelPruning finds no {' or '.join(self._parameter_names)} parameter to "
                                        "prune in this model", ("parameter_names",))
        if self._use_lottery_ticket_hypothesis:
            self._original = {f"{m}.{n}": module.get_parameter(n).detach().clone()
                              for m, module, n in self._parameters_to_prune}
            if self._resample_parameters:  # pristine copies, to draw new initial values from
                self._layers = {m: copy.deepcopy(module) for m, module, _ in self._parameters_to_prune}
        if not self._make_pruning_permanent:
            # torch's reparametrization from the start (a mask of ones): every checkpoint has the same keys, and a
            # resumed run's masks come back with the weights
            for _, module, name in self._parameters_to_prune:
                torch_prune.identity(module, name)

    def _selected(self, candidates: list[tuple[str, nn.Module, str]]) -> list[tuple[str, nn.Module, str]]:
        """The candidates whose `layer.parameter` name a glob of `parameters_to_prune` matches; a glob that
        matches none is an error naming the names there are."""
        names = [f"{m}.{n}" for m, _, n in candidates]
        for index, pattern in enumerate(self._patterns or []):
            if not fnmatch.filter(names, pattern):
                hint = did_you_mean(pattern, names)
                raise MisconfigurationError(
                    f"parameters_to_prune '{pattern}' matches no {' or '.join(self._parameter_names)} parameter of "
                    f"the model" + (f" — {hint}" if hint else "") + f" (there are: {', '.join(names)})",
                    ("parameters_to_prune", index))
        return [c for c, name in zip(candidates, names) if any(fnmatch.fnmatchcase(name, p) for p in self._patterns)]

    # -- when -------------------------------------------------------------------------------------------------

    def on_train_epoch_end(self, trainer: Any, model: Any) -> None:
        if self._prune_on_train_epoch_end:
            self._run_pruning(trainer, trainer.current_epoch)

    def on_validation_end(self, trainer: Any, model: Any) -> None:
        if not trainer.sanity_checking and not self._prune_on_train_epoch_end:
            self._run_pruning(trainer, trainer.current_epoch)

    def on_train_end(self, trainer: Any, model: Any) -> None:
        if self._make_pruning_permanent:
            self.make_pruning_permanent()

    def _amount_at(self, epoch: int) -> Amount:
        return self.amount.get(epoch, 0) if isinstance(self.amount, dict) else self.amount

    def _run_pruning(self, trainer: Any, epoch: int) -> None:
        amount = self._amount_at(epoch)
        if not self._apply_pruning or not amount:
            return
        before = self._pruned_stats()
        with torch.no_grad():
            if self._use_global_unstructured:
                torch_prune.global_unstructured([(module, name) for _, module, name in self._parameters_to_prune],
                                                pruning_method=PRUNING_METHODS[self.pruning_fn], amount=amount)
            else:
                for _, module, name in self._parameters_to_prune:
                    PRUNING_FUNCTIONS[self.pruning_fn](module, name=name, amount=amount, **self._kwargs)
            if self._use_lottery_ticket_hypothesis:
                self.apply_lottery_ticket_hypothesis()
        if self._verbose:
            self._print_sparsity(trainer, before, self._pruned_stats(), amount)

    # -- what -------------------------------------------------------------------------------------------------

    def apply_lottery_ticket_hypothesis(self) -> None:
        """Reset the parameters (their unpruned part: the masks stay) to their values at the start of training."""
        for module_name, module, name in self._parameters_to_prune:
            original = self._original[f"{module_name}.{name}"]
            layer = self._layers.get(module_name)
            if layer is not None and hasattr(layer, "reset_parameters"):
                fresh = copy.deepcopy(layer)
                fresh.reset_parameters()
                original = getattr(fresh, name).detach()
            target = getattr(module, f"{name}_orig", None)
            (target if target is not None else getattr(module, name)).data.copy_(original)

    def make_pruning_permanent(self) -> None:
        """Remove torch's pruning hooks: each parameter becomes its pruned value (zeros where masked)."""
        for _, module, name in self._parameters_to_prune:
            if torch_prune.is_pruned(module) and hasattr(module, f"{name}_mask"):
                torch_prune.remove(module, name)

    def _masks(self) -> dict[str, torch.Tensor]:
        return {f"{m}.{n}": getattr(module, f"{n}_mask").bool().cpu() for m, module, n in self._parameters_to_prune
                if hasattr(module, f"{n}_mask")}

    def _pruned_stats(self) -> list[tuple[int, int]]:
        """(zeros in the mask, size) of each parameter: (0, size) before any pruning."""
        stats = []
        for _, module, name in self._parameters_to_prune:
            mask = getattr(module, f"{name}_mask", None)
            stats.append((int((mask == 0).sum()), mask.numel()) if mask is not None
                         else (0, getattr(module, name).numel()))
        return stats

    def _print_sparsity(self, trainer: Any, before: list[tuple[int, int]], after: list[tuple[int, int]],
                        amount: Amount) -> None:
        total = sum(size for _, size in after)
        was, now = sum(zeros for zeros, _ in before), sum(zeros for zeros, _ in after)
        method = PRUNING_METHODS[self.pruning_fn].__name__
        trainer.print(f"Applied `{method}`. Pruned: {was}/{total} ({was / total:.2%}) -> {now}/{total} ({now / total:.2%})")
        if self._verbose == 2:
            for (module_name, _, name), (was_one, size), (now_one, _) in zip(self._parameters_to_prune, before, after):
                trainer.print(f"Applied `{method}` to `{module_name}.{name}` with amount={amount}. Pruned: "
                              f"{was_one} ({was_one / size:.2%}) -> {now_one} ({now_one / size:.2%})")

    # -- checkpoints ----------------------------------------------------------------------------------------

    def on_save_checkpoint(self, trainer: Any, model: Any, checkpoint: dict) -> None:
        if self._make_pruning_permanent:  # plain weights: orig × mask, as the model without pruning loads them
            state = checkpoint["state_dict"]
            for key in [k[: -len("_mask")] for k in state if k.endswith("_mask") and k[: -len("_mask")] + "_orig" in state]:
                mask, orig = state.pop(key + "_mask"), state.pop(key + "_orig")
                state[key] = mask.to(orig.dtype) * orig

    def state_dict(self) -> dict:
        state: dict[str, Any] = {"masks": self._masks()} if self._make_pruning_permanent else {}
        if self._use_lottery_ticket_hypothesis:
            state["original"] = {key: value.cpu() for key, value in self._original.items()}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = state_dict

    def on_load_checkpoint(self, trainer: Any, model: Any, checkpoint: dict) -> None:
        """On resume: the masks back on the (plain) weights, and the lottery ticket's initial values."""
        state = self._restored
        masks, originals = state.get("masks", {}), state.get("original", {})
        for module_name, module, name in self._parameters_to_prune:
            key = f"{module_name}.{name}"
            device = _value(module, name).device
            if key in masks:
                torch_prune.custom_from_mask(module, name, masks[key].to(device))
            if key in originals:
                self._original[key] = originals[key].to(device)


def _value(module: nn.Module, name: str) -> torch.Tensor:
    return getattr(module, f"{name}_orig", None) if hasattr(module, f"{name}_orig") else getattr(module, name)


def _checked(amount: Any) -> Amount:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise ValueError(f"amount must be a fraction (0-1), a count or {{epoch: amount}}, got {amount!r}")
    if isinstance(amount, float) and not 0.0 <= amount <= 1.0 or amount < 0:
        raise ValueError(f"amount={amount} must be a fraction between 0.0 and 1.0, or a count (an integer)")
    return amount


def _schedule(amounts: dict) -> dict[int, Amount]:
    schedule = {}
    for key, value in amounts.items():
        if isinstance(key, bool) or not str(key).isdigit():
            raise ValueError(f"amount's keys are epochs (0 or more), got {key!r}")
        schedule[int(key)] = _checked(value)
    return schedule
