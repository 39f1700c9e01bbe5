"""Shared fixtures: a tiny synthetic Fashion-MNIST written as IDX files, and headless matplotlib."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")

from aelab.data.sources.idx import FASHION_MNIST_FILES, SYSTEM_DIR, write_idx  # noqa: E402

REAL_DATA = all((SYSTEM_DIR / f"{spec.name}.gz").exists() for spec in FASHION_MNIST_FILES.values())
requires_real_data = pytest.mark.skipif(
    not REAL_DATA, reason=f"real Fashion-MNIST not in {SYSTEM_DIR} (apt-get install -y dataset-fashion-mnist)"
)


def synthetic_images(labels: np.ndarray, seed: int, size: int = 28) -> np.ndarray:
    """uint8 images ``(N, size, size)``: class k is a bright bar whose position depends on k, plus noise."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    images = rng.integers(0, 40, size=(n, size, size)).astype(np.float32)
    for k in range(10):
        rows = labels == k
        r0 = 2 + 2 * k
        images[rows, r0 : r0 + 4, 4 : size - 4] += 200
        if k % 2:
            images[rows, 4 : size - 4, size // 2 - 2 : size // 2 + 2] += 150
    return np.clip(images, 0, 255).astype(np.uint8)


def write_fake_fashion_mnist(directory: Path, n_train: int = 400, n_test: int = 200, seed: int = 0) -> Path:
    """Writes the four Fashion-MNIST IDX files (gzip) with synthetic content into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tr_y = np.tile(np.arange(10, dtype=np.uint8), n_train // 10 + 1)[:n_train]
    te_y = np.tile(np.arange(10, dtype=np.uint8), n_test // 10 + 1)[:n_test]
    rng.shuffle(tr_y)
    f = FASHION_MNIST_FILES
    write_idx(directory / f"{f['train_images'].name}.gz", synthetic_images(tr_y, seed))
    write_idx(directory / f"{f['train_labels'].name}.gz", tr_y)
    write_idx(directory / f"{f['test_images'].name}.gz", synthetic_images(te_y, seed + 1))
    write_idx(directory / f"{f['test_labels'].name}.gz", te_y)
    return directory


@pytest.fixture(scope="session")
def fake_data_dir(tmp_path_factory) -> Path:
    """A directory with a tiny synthetic Fashion-MNIST (400 train, 200 test images), checksums off."""
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(autouse=True)
def full_tracebacks(monkeypatch):
    """Tests call ``aelab.cli.main`` and expect the exceptions themselves (the command line prints one
    line instead; tests/test_robustness.py checks that)."""
    monkeypatch.setenv("AELAB_TRACEBACK", "1")
