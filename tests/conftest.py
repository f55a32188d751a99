"""Shared test fixtures: data files written by the tests themselves (nothing downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from idx import write_mnist


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    """A folder with MNIST/raw/ holding 300 train and 100 test IDX images; use as MNIST's `root`."""
    root = tmp_path / "mnist"
    write_mnist(root, n_train=300, n_test=100, seed=0)
    return root
