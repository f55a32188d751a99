"""Spec layers → an nn.Module, with the shapes that connect them inferred.

Planning runs every layer on a batch of two samples: a small layer (digits' Conv2d, an MLP's Linear)
on the CPU with real zeros, a large one (a ResNet, a 100M-parameter transformer) on the meta device,
with no memory and no compute. Either gives the same shapes; the CPU is chosen where it is cheap
because torch's meta kernels import sympy and torch._dynamo on first use, which costs a cold
`dtrain validate` more than a second (docs/tooling.md). A layer that fails on the CPU is traced
again on the meta device, so its error reads the same either way. The plan is a tree of nodes, one per layer item (constructs and blocks
hold the nodes of their layer lists), each with its resolved arguments, output shape and parameter
count; `dtrain summary` prints it, validation reports what does not fit, and `build_model` makes the
real modules from the same arguments, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn

from declarative.errors import Problem, SpecError, did_you_mean
from declarative.model.functional import MULTI_INPUT
from declarative.model.graph import Parallel, Residual, LayerList, SpecModel, Wiring
from declarative.model.layers import INFERRED_FROM, LAYERS
from declarative.model.meta import on_meta
from declarative.model.syntax import CONSTRUCTS, DATA_VALUES, reference_name, split_item
from declarative.spec.config import Component, Spec

TRACE_BATCH = 2  # a batch of one would trip layers that need more than one value per channel
# What a plan may spend on CPU traces, in multiply-adds, about 0.1 s on two cores. A layer's are taken to be
# (parameters + 1) x input values / its input's narrowest dim: exact for a Linear (B, F) and a stride-1
# convolution whose channels are fewer than its width, above the truth otherwise. Layers past it are
# traced on the meta device.
CPU_TRACE_BUDGET = 1e9
# The most parameters a layer built on the CPU may have: its initial weights are drawn and held (8 MB at most).
CPU_TRACE_MAX_PARAMETERS = 2_000_000


@dataclass
class PlannedNode:
    component: Component
    kwargs: dict[str, Any]  # the spec's arguments, references resolved, plus the inferred ones
    inferred: dict[str, Any]
    output_shape: tuple[int, ...]  # without the batch dim
    parameters: int
    trainable: int
    name: str = ""  # the module's dotted name under `layers`, e.g. 3.layers.0
    children: list["PlannedNode"] = field(default_factory=list)
    make: Callable[[], nn.Module] | None = field(default=None, repr=False)

    def walk(self, depth: int = 0) -> Iterator[tuple[int, "PlannedNode"]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass
class ModelPlan:
    input_shape: tuple[int, ...]
    nodes: list[PlannedNode]
    make: Callable[[], LayerList] | None = field(default=None, repr=False)

    @property
    def parameters(self) -> int:
        return sum(n.parameters for n in self.nodes)

    @property
    def trainable(self) -> int:
        return sum(n.trainable for n in self.nodes)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.nodes[-1].output_shape if self.nodes else self.input_shape

    def walk(self) -> Iterator[tuple[int, PlannedNode]]:
        """Every node, depth first, with its depth (0: an item of model.layers)."""
        for node in self.nodes:
            yield from node.walk()


def shape_text(shape: tuple[int, ...]) -> str:
    """[N, 1, 28, 28]: the batch dim as N."""
    return "[" + ", ".join(["N", *map(str, shape)]) + "]"


def _infer(entry_params: set[str], shape: tuple[int, ...]) -> dict[str, Any]:
    """Values for the shape arguments this layer takes, read off its input shape (batch first)."""
    out = {}
    for name in entry_params & set(INFERRED_FROM):
        rule = INFERRED_FROM[name]
        if rule == "channel" and len(shape) >= 2:
            out[name] = shape[1]
        elif rule == "last" and len(shape) >= 2:
            out[name] = shape[-1]
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _shapes(tensors: list[torch.Tensor], names: list[str] | None) -> str:
    texts = [shape_text(tuple(t.shape[1:])) for t in tensors]
    if names:
        texts = [f"{t} ({n})" for t, n in zip(texts, names)]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def _params(module: nn.Module) -> tuple[int, int]:
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def _on_cpu(t: torch.Tensor) -> torch.Tensor:
    """A trace tensor on the CPU: zeros of its shape and dtype where it is a meta tensor."""
    return torch.zeros(t.shape, dtype=t.dtype) if t.device.type == "meta" else t


def _on_meta(t: torch.Tensor) -> torch.Tensor:
    return t if t.device.type == "meta" else torch.empty(t.shape, dtype=t.dtype, device="meta")


def _add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A residual's sum, on the meta device where either side was traced there."""
    return a + b if a.device == b.device else _on_meta(a) + _on_meta(b)


# The most layers (blocks and constructs counted too) a model may expand to: far beyond real models
# (a ResNet-152 has about 500), and small enough to plan in seconds.
MAX_LAYERS = 10_000


class _Planner:
    """Walks the spec's layer lists with meta tensors, making the plan tree."""

    def __init__(self, spec: Spec, data_values: dict[str, Any]):
        self.spec = spec
        self.data_values = data_values
        self.blocks = spec.model.blocks or {}
        self.block_stack: list[str] = []
        self.planned = 0  # layers, blocks and constructs planned so far, each copy of a repeat counted
        self.cpu_budget = CPU_TRACE_BUDGET  # what CPU traces may still spend (see CPU_TRACE_BUDGET)

    # -- references ------------------------------------------------------------------------------
    def resolve(self, value: Any, scope: dict[str, Any], path: tuple) -> Any:
        """Replace `${name}` references by their values, in lists and mappings too."""
        name = reference_name(value)
        if name is not None:
            if name in scope:
                found = scope[name]
                if found is None and name == "data.num_classes":
                    raise self.spec.error(path, "${data.num_classes} has no value: the data's targets are not "
                                                "class indices (floats?), so it has no number of classes")
                if found is None and name == "data.vocab_size":
                    raise self.spec.error(path, "${data.vocab_size} has no value: the data has no text column "
                                                "(a CSV column with `type: text`, or TextFolder)")
                return list(found) if isinstance(found, (list, tuple)) else found
            if name.startswith("data.") and name not in scope and not self.data_values:
                raise self.spec.error(path, f"${{{name}}} is not a data value; there are "
                                            + ", ".join(f"${{{n}}}" for n in DATA_VALUES))
            known = [f"${{{n}}}" for n in scope]
            hint = did_you_mean(f"${{{name}}}", known)
            known = ", ".join(known) or "none here"
            raise self.spec.error(path, f"unknown reference ${{{name}}}" + (f" — {hint}" if hint else "")
                                  + f" (known: {known})")
        if isinstance(value, list):  # a list-valued reference inside a list is spliced in: [-1, ${data.input_shape}]
            out = []
            for i, v in enumerate(value):
                resolved = self.resolve(v, scope, path + (i,))
                spliced = reference_name(v) is not None and isinstance(resolved, list)
                out.extend(resolved) if spliced else out.append(resolved)
            return out
        if isinstance(value, dict):
            return {k: self.resolve(v, scope, path + (k,)) for k, v in value.items()}
        return value

    # -- layer lists -----------------------------------------------------------------------------
    def sequence(self, items: list[Component], x: torch.Tensor, scope: dict, prefix: str
                 ) -> tuple[list[PlannedNode], Callable[[], LayerList], torch.Tensor]:
        spec = self.spec
        defined = {c.wiring["name"]: i for i, c in enumerate(items) if isinstance(c.wiring.get("name"), str)}
        kept: dict[str, torch.Tensor] = {}
        nodes, makers, wiring = [], [], []
        for i, component in enumerate(items):
            label = f"layer {prefix}{i} ({component.name})"
            inputs = component.wiring.get("input")
            names = [inputs] if isinstance(inputs, str) else list(inputs) if inputs is not None else None
            if names is not None:
                args = []
                for k, name in enumerate(names):
                    where = component.path + (("input",) if isinstance(inputs, str) else ("input", k))
                    if name in kept:
                        args.append(kept[name])
                    elif name in defined:
                        later = "this item itself" if defined[name] == i else f"a later item (layer {prefix}{defined[name]})"
                        raise spec.error(where, f"{label} reads '{name}', which is named by {later}: a layer can "
                                                "only read outputs of the items before it, so a model has no cycles")
                    else:
                        hint = did_you_mean(name, list(kept))
                        raise spec.error(where, f"{label} reads '{name}', but no item before it in this list is "
                                                "named so" + (f" — {hint}" if hint else "")
                                         + (f" (named so far: {', '.join(kept)})" if kept else "")
                                         + "; names are local to the layer list that defines them")
            else:
                args = [x]
            node, y = self.item(component, args, names, scope, f"{prefix}{i}", label)
            output = component.wiring.get("output")
            picks = () if output is None else (output,) if isinstance(output, int) else tuple(output)
            for pick in picks:
                if not isinstance(y, (tuple, list)):
                    raise spec.error(component.path + ("output",),
                                     f"{label} returns one tensor; `output` picks an element of a tuple output")
                if not -len(y) <= pick < len(y):
                    raise spec.error(component.path + ("output",),
                                     f"{label} returns a tuple of {len(y)}; output {pick} is out of range")
                y = y[pick]
            if not isinstance(y, torch.Tensor):
                kinds = ", ".join(type(v).__name__ for v in y) if isinstance(y, (tuple, list)) else ""
                raise spec.error(component.path,
                                 f"{label} returns a {type(y).__name__}" + (f" of {len(y)} ({kinds})" if kinds else "")
                                 + ", not a tensor; keep one element with `output: 0` beside it")
            node.output_shape = tuple(y.shape[1:])
            if component.wiring.get("trainable") is False:
                for _, frozen in node.walk():
                    frozen.trainable = 0
            name = component.wiring.get("name")
            if name is not None:
                if name in kept:
                    raise spec.error(component.path + ("name",), f"'{name}' names an earlier item of this list "
                                                                 "already; names must differ")
                kept[name] = y
            nodes.append(node)
            makers.append(node.make)
            wiring.append(Wiring(None if names is None else tuple(names), picks, name))
            x = y
        return nodes, lambda: LayerList([make() for make in makers], wiring), x

    def _items(self, raw: Any, path: tuple) -> list[Component]:
        return [Component.parse_layer(item, path + (i,)) for i, item in enumerate(raw or [])]

    def item(self, component: Component, args: list[torch.Tensor], names: list[str] | None, scope: dict,
             dotted: str, label: str) -> tuple[PlannedNode, Any]:
        self.planned += 1
        if self.planned > MAX_LAYERS:  # nested repeats multiply: stop before planning takes minutes
            raise self.spec.error(component.path, f"the model has more than {MAX_LAYERS:,} layers once repeats and "
                                                  f"blocks are expanded; a model may have at most {MAX_LAYERS:,}")
        if component.name in CONSTRUCTS:
            if len(args) != 1:
                raise self.spec.error(component.path + ("input",), f"{label} reads one input, not {len(args)}")
            return getattr(self, component.name)(component, args[0], scope, dotted, label)
        if component.name in self.blocks:
            if len(args) != 1:
                raise self.spec.error(component.path + ("input",), f"{label} reads one input, not {len(args)}")
            return self.block(component, args[0], scope, dotted, label)
        return self.layer(component, args, names, scope, dotted, label)

    def layer(self, component: Component, args: list[torch.Tensor], names: list[str] | None, scope: dict,
              dotted: str, label: str) -> tuple[PlannedNode, Any]:
        spec = self.spec
        if component.name not in LAYERS:
            hint = did_you_mean(component.name, [*LAYERS.names(), *self.blocks])
            raise spec.error(component.path, f"unknown layer '{component.name}'" + (f" — {hint}" if hint else "")
                             + " (`dtrain layers` lists them)")
        entry = LAYERS[component.name]
        kwargs = self.resolve(component.kwargs, scope, component.path + (component.name,))
        self._check_referenced(entry, component, kwargs, label)
        if component.name in MULTI_INPUT and len(args) < 2:
            raise spec.error(component.path, f"{label} combines several tensors: name them with `input: [a, b]` "
                                             "beside it, or use it as the merge of a parallel")
        shape = tuple(args[0].shape)
        inferred = _infer(set(entry.params), shape)
        problems = []
        for name, value in list(inferred.items()):
            if name not in kwargs:
                continue
            given = kwargs[name]
            if given != value and not (name == "normalized_shape" and isinstance(given, list)):
                problems.append(spec.problem(
                    component.path + (component.name, name),
                    f"{name}={given} disagrees with the input of {label}, shape {shape_text(shape[1:])}, "
                    f"which gives {name}={value} — remove it to have it inferred",
                ))
            del inferred[name]
        if problems:
            raise SpecError(problems)
        missing = [p for p in entry.required if p not in kwargs]
        if missing:
            raise spec.error(component.path, f"{label} needs {', '.join(missing)}")
        try:
            with on_meta():
                module = entry.build(kwargs, **inferred)
        except FileNotFoundError as exc:  # named torchvision weights that are not in the hub cache
            raise spec.error(component.path + (component.name, "weights"),
                             f"{label}: the weights {kwargs.get('weights')} are not in the torch hub cache ({exc}); "
                             "dtrain never downloads: fetch the file there first (torch.hub.get_dir(), or set "
                             "TORCH_HOME) or set weights: null") from None
        except Exception as exc:  # torch's own argument checks (ValueError, TypeError, ...)
            raise spec.error(component.path, f"{label} cannot be built: {_first_line(exc)}") from None
        parameters, trainable = _params(module)
        frozen = dict(kwargs)
        y = None if kwargs.get("weights") else self._cpu_trace(lambda: entry.build(frozen, **inferred), args, parameters)
        if y is None:
            module.eval()  # trace without training-mode batch statistics checks
            try:
                y = module(*[_on_meta(a) for a in args])
            except Exception as exc:
                what = "input" if len(args) == 1 else "inputs"
                raise spec.error(component.path, f"{label} cannot take its {what} of shape"
                                                 f"{'s' if len(args) > 1 else ''} "
                                                 f"{_shapes(args, names if len(args) > 1 else None)}: "
                                                 f"{_first_line(exc)}") from None
        return PlannedNode(component, {**kwargs, **inferred}, inferred, (), parameters, trainable, dotted,
                           make=lambda: entry.build(frozen, **inferred)), y

    def _cpu_trace(self, build: Callable[[], nn.Module], args: list[torch.Tensor], parameters: int) -> Any:
        """The layer's output on zeros on the CPU, where that is within the budget; None where it is not, or
        where the layer fails there (the meta trace then says why, in its usual words)."""
        cost = (parameters + 1) * sum(a.numel() / min(a.shape[1:], default=1) for a in args)
        if cost > self.cpu_budget or parameters > CPU_TRACE_MAX_PARAMETERS:
            return None
        self.cpu_budget -= cost
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():  # the weights' init draws leave a seeded run's draws alone
                module = build().eval()
                return module(*[_on_cpu(a) for a in args])
        except Exception:
            return None

    def _check_referenced(self, entry, component: Component, kwargs: dict, label: str) -> None:
        """A value that came from a `${...}` reference meets the schema its argument has."""
        from declarative.spec.messages import describe, show
        from declarative.spec.validate import validator_class

        for key, raw in component.kwargs.items():
            if key not in entry.params or kwargs[key] == raw:
                continue
            schema = entry.params[key].schema
            if not validator_class()(schema).is_valid(kwargs[key]):
                raise self.spec.error(component.path + (component.name, key),
                                      f"{label}: {key} is {show(kwargs[key])} (from {show(raw)}), but it must be "
                                      f"{describe(schema)}")

    # -- constructs --------------------------------------------------------------------------------
    def residual(self, component: Component, x: torch.Tensor, scope: dict, dotted: str, label: str):
        path = component.path + ("residual",)
        body, make_body, y = self.sequence(self._items(component.kwargs.get("layers"), path + ("layers",)), x, scope,
                                           f"{dotted}.layers.")
        shortcut, make_shortcut, s = [], None, x
        if component.kwargs.get("shortcut"):
            shortcut, make_shortcut, s = self.sequence(self._items(component.kwargs["shortcut"], path + ("shortcut",)),
                                                       x, scope, f"{dotted}.shortcut.")
        if y.shape != s.shape:
            what = "its shortcut's" if make_shortcut else "its input"
            hint = "" if make_shortcut else " — add a projection, e.g. shortcut: [{Conv2d: {out_channels: ..., " \
                                            "kernel_size: 1, stride: ...}}]"
            raise self.spec.error(component.path, f"{label} adds its layers' output {shape_text(tuple(y.shape[1:]))} "
                                                  f"to {what} {shape_text(tuple(s.shape[1:]))}; they must have the "
                                                  f"same shape{hint}")
        children = body + shortcut
        return self._parent(component, children, dotted,
                            lambda: Residual(make_body(), make_shortcut() if make_shortcut else None)), _add(y, s)

    def parallel(self, component: Component, x: torch.Tensor, scope: dict, dotted: str, label: str):
        path = component.path + ("parallel",)
        children, makers, outputs = [], [], []
        for b, branch in enumerate(component.kwargs.get("branches") or []):
            nodes, make, y = self.sequence(self._items(branch, path + ("branches", b)), x, scope,
                                           f"{dotted}.branches.{b}.")
            children += nodes
            makers.append(make)
            outputs.append(y)
        merge = Component.parse_layer(component.kwargs.get("merge"), path + ("merge",))
        branch_names = [f"branch {b}" for b in range(len(outputs))]
        merged, y = self.layer(merge, outputs, branch_names, scope, f"{dotted}.merge", f"{label} merge ({merge.name})")
        merged.output_shape = tuple(y.shape[1:])
        children.append(merged)
        return self._parent(component, children, dotted,
                            lambda: Parallel([make() for make in makers], merged.make())), y

    def repeat(self, component: Component, x: torch.Tensor, scope: dict, dotted: str, label: str):
        path = component.path + ("repeat",)
        times = self.resolve(component.kwargs.get("times"), scope, path + ("times",))
        if not isinstance(times, int) or times < 1:
            raise self.spec.error(path + ("times",), f"{label}: times must be an integer >= 1, got {times!r}")
        children, makers = [], []
        for r in range(times):
            items = self._items(component.kwargs.get("layers"), path + ("layers",))
            if len(items) == 1 and not items[0].wiring:  # one item: its copies are the repeat's items
                node, x = self.item(items[0], [x], None, scope, f"{dotted}.{r}", f"layer {dotted}.{r} ({items[0].name})")
                if not isinstance(x, torch.Tensor):
                    raise self.spec.error(items[0].path, f"{label}: {items[0].name} returns a {type(x).__name__}, "
                                                         "not a tensor")
                node.output_shape = tuple(x.shape[1:])
                nodes, make = [node], node.make
            else:
                nodes, make, x = self.sequence(items, x, scope, f"{dotted}.{r}.")
            children += nodes
            makers.append(make)
        return self._parent(component, children, dotted, lambda: LayerList([make() for make in makers])), x

    def block(self, component: Component, x: torch.Tensor, scope: dict, dotted: str, label: str):
        spec, name = self.spec, component.name
        if name in self.block_stack:
            chain = " → ".join([*self.block_stack[self.block_stack.index(name):], name])
            raise spec.error(component.path, f"block {name} uses itself ({chain}); blocks cannot recurse")
        definition = self.blocks[name] or {}
        params = dict(definition.get("params") or {})
        given = self.resolve(component.kwargs, scope, component.path + (name,))
        for key in given:
            if key not in params:
                hint = did_you_mean(key, params)
                raise spec.error(component.path + (name, key), f"block {name} has no parameter '{key}'"
                                 + (f" — {hint}" if hint else "")
                                 + f" (it takes: {', '.join(params) or 'none'})", key=True)
        missing = [p for p, default in params.items() if default is None and p not in given]
        if missing:
            raise spec.error(component.path, f"block {name} needs {', '.join(missing)} (no default in its params)")
        inner = {**self.data_values, **params, **given}
        self.block_stack.append(name)
        try:
            nodes, make, y = self.sequence(self._items(definition.get("layers"), ("model", "blocks", name, "layers")),
                                           x, inner, f"{dotted}.")
        except SpecError as exc:  # the problem is in the block's body: say which use of it
            used = spec.problem(component.path, "").location
            raise SpecError([Problem(p.location, f"{p.message} (in block {name}, used at {used})")
                             for p in exc.problems]) from None
        finally:
            self.block_stack.pop()
        node = self._parent(component, nodes, dotted, make)
        node.kwargs = {**params, **given}
        return node, y

    def _parent(self, component: Component, children: list[PlannedNode], dotted: str,
                make: Callable[[], nn.Module]) -> PlannedNode:
        return PlannedNode(component, dict(component.kwargs), {}, (), sum(c.parameters for c in children),
                           sum(c.trainable for c in children), dotted, children, make)


def _expanded_count(items: Any, blocks: dict, using: tuple = ()) -> int:
    """How many items a layer list becomes once repeats and blocks are expanded, read from the spec without
    tracing anything (it stops counting past MAX_LAYERS)."""
    total = 0
    for item in items if isinstance(items, list) else []:
        name, kwargs, _ = split_item(item)
        total += 1
        kwargs = kwargs if isinstance(kwargs, dict) else {}
        if name == "repeat":
            times = kwargs.get("times") if isinstance(kwargs.get("times"), int) else 1
            total += times * _expanded_count(kwargs.get("layers"), blocks, using)
        elif name == "parallel":
            branches = kwargs.get("branches") if isinstance(kwargs.get("branches"), list) else []
            total += sum(_expanded_count(branch, blocks, using) for branch in branches) + 1
        elif name in CONSTRUCTS:
            total += sum(_expanded_count(kwargs.get(key), blocks, using) for key in CONSTRUCTS[name])
        elif name in blocks and name not in using and isinstance(blocks[name], dict):
            total += _expanded_count(blocks[name].get("layers"), blocks, using + (name,))
        if total > MAX_LAYERS:
            break
    return total


# Layers that take integer ids (token ids), not features: a model that starts with one is traced with int64.
_ID_LAYERS = ("Embedding", "EmbeddingBag")


def trace_dtype(spec: Spec) -> torch.dtype:
    """The dtype of the samples the model is traced with: the data's when it was read and holds integer ids,
    int64 when the first layer takes ids, else float32."""
    info = spec.model.data
    dtype = getattr(info, "input_dtype", None)
    if dtype is not None and not dtype.is_floating_point and dtype != torch.bool and dtype != torch.uint8:
        return torch.int64
    if spec.model.layers and spec.model.layers[0].name in _ID_LAYERS:
        return torch.int64
    return torch.float32


def plan_model(spec: Spec) -> ModelPlan:
    """Trace the model on the meta device; the first item that does not fit is a located SpecError
    (the shapes after it are unknown). `${data.*}` references and `input: auto` take the data's values first
    (declarative.model.data_values)."""
    from declarative.model.data_values import data_values, resolve_input

    values = data_values(spec)
    input_shape = resolve_input(spec, values)
    x = torch.empty((TRACE_BATCH, *input_shape), device="meta", dtype=trace_dtype(spec))
    raw_layers = [layer.to_yaml() for layer in spec.model.layers]
    if _expanded_count(raw_layers, spec.model.blocks or {}) > MAX_LAYERS:
        raise spec.error(("model", "layers"), f"the model has more than {MAX_LAYERS:,} layers once repeats and "
                                              f"blocks are expanded; a model may have at most {MAX_LAYERS:,}")
    planner = _Planner(spec, values)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU traces are small: a second thread only waits for them (far longer on a busy machine)
    try:
        nodes, make, _ = planner.sequence(spec.model.layers, x, dict(values), "")
    finally:
        torch.set_num_threads(threads)
    return ModelPlan(input_shape, nodes, make)


def build_model(spec: Spec, plan: ModelPlan | None = None) -> SpecModel:
    """The real model, initialised by each layer's own reset, on the CPU."""
    from declarative.model.freezing import freeze
    from declarative.model.init import apply_item_init, apply_type_init

    plan = plan or plan_model(spec)
    model = SpecModel(plan.make())
    apply_type_init(model, spec.model.init, spec)
    for _, node in plan.walk():  # items' own settings, after the per-type initializers
        settings = node.component.wiring
        if any(key in settings for key in ("init", "trainable", "train_bn")):
            module = model.layers.get_submodule(node.name)
            apply_item_init(module, settings.get("init") or {}, node.component.path + ("init",), spec)
            if settings.get("trainable") is False:
                freeze(module, train_bn=settings.get("train_bn", True))
            elif settings.get("train_bn") is False:
                raise spec.error(node.component.path + ("train_bn",), "train_bn: false goes with trainable: false "
                                                                     "(it freezes the statistics of frozen layers)")
    return model
