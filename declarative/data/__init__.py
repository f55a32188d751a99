"""Data from specs: sources, transforms, splits, and batches in memory or through a DataLoader.

`build_data(spec, device)` is the stage's entry point: it loads (or opens) the spec's source,
carves or loads the val and test splits, fills `Normalize: {mean: auto, std: auto}` from the
training split, and chooses how batches reach the model (declarative/data/loading.py):

- in memory: each split held as tensors on the device, batched by index slicing. The
  deterministic transforms at the head of a split's pipeline run once, over the whole split,
  when the result fits the memory budget; the rest run on each batch.
- DataLoader: per-sample reads, collated, moved to the device; the transforms run there on
  each batch.

Either way a training batch is `transforms(train_transforms(x))` and an eval batch
`transforms(eval_transforms(x))`, with random transforms drawn per sample. With `targets: inputs`
a sample's target is the sample itself as `transforms` make it, without their random ones (a
denoising autoencoder's noise). Val and test batches hold `eval_batch_size` samples.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DataModule", "build_data", "check_model_input", "Batches", "LoaderBatches", "Source", "SourceError",
           "TensorSplit", "SOURCES", "TRANSFORMS"]

# Where each name lives. The package imports nothing until a name is used: the transforms are
# torchvision's, and torchvision's import takes a second or more, which `dtrain validate` of a spec
# that never names one should not pay. Each source module registers its sources in SOURCES when a
# spec names one (declarative/data/sources.py).
_HOMES = {"DataModule": "build", "build_data": "build", "check_model_input": "build", "check_eval_shape": "build",
          "Batches": "batches", "LoaderBatches": "loading", "Source": "sources", "SourceError": "sources",
          "TensorSplit": "sources", "SOURCES": "sources", "TRANSFORMS": "transforms"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
