"""Shared test fixtures: data files written by the tests themselves (nothing downloads), and a counter of
the host reads dtrain's own code makes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from idx import write_mnist


@pytest.fixture(autouse=True, scope="session")
def _own_validate_cache(tmp_path_factory):
    """`dtrain validate` remembers outcomes in the user's cache folder: the tests use one of their own."""
    import os

    os.environ["DTRAIN_CACHE_DIR"] = str(tmp_path_factory.mktemp("dtrain-cache"))


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """A folder with MNIST/raw/ holding 300 train and 100 test IDX images; use as MNIST's `root`."""
    root = tmp_path / "mnist"
    write_mnist(root, n_train=300, n_test=100, seed=0)
    return root


# Every way a tensor's value reaches the host (and so waits for the device).
HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def host_reads(monkeypatch) -> list[str]:
    """The names of the host reads (`.item()`, `float(t)`, ...) that code in `declarative.*` makes from now on."""
    reads: list[str] = []

    def counted(name, original):
        def read(tensor, *args, **kwargs):
            if sys._getframe(1).f_globals.get("__name__", "").startswith("declarative."):
                reads.append(name)
            return original(tensor, *args, **kwargs)
        return read

    for name in HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, counted(name, getattr(torch.Tensor, name)))
    return reads
