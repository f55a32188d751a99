"""Reproducible runs: one seed for every generator, and deterministic kernels on request."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator

import torch

__all__ = ["seed_everything", "reproducible"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (every device's), as Lightning's seed_everything does."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional to torch
        pass
    torch.manual_seed(seed)  # seeds the CPU and every CUDA device
    torch.cuda.manual_seed_all(seed)  # explicit; a no-op until CUDA initialises


@contextlib.contextmanager
def reproducible(seed: int, deterministic: bool | str = False, benchmark: bool | None = None) -> Iterator[None]:
    """Seed everything; with `deterministic` (True, or Lightning's "warn": warn where no deterministic kernel
    exists instead of failing), make torch use deterministic kernels, and with `benchmark` set cuDNN's
    autotuner, until the block ends."""
    seed_everything(seed)
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
        torch.use_deterministic_algorithms(True, warn_only=deterministic == "warn")
        torch.backends.cudnn.benchmark = False
    if benchmark is not None:
        torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = previous[2]
