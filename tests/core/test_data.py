"""Datasets as in-memory tensors: digits, CIFAR-10 from the shared tarball, image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autocompress.core.data import CIFAR10_ARCHIVE, load_dataset
from autocompress.core.errors import ConfigError, UnknownNameError

SHARED_ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "datasets" / CIFAR10_ARCHIVE


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCOMPRESS_CACHE", str(tmp_path / "cache"))


def test_digits_splits_are_deterministic_normalised_and_disjoint():
    a = load_dataset("digits", seed=0)
    b = load_dataset("digits", seed=0)
    c = load_dataset("digits", seed=1)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10 and len(a.class_names) == 10
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert a.train.images.dtype == torch.float32 and a.train.labels.dtype == torch.int64
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)  # the seed moves the validation split
    # the test split never moves (its normalisation follows the training split's statistics)
    assert torch.equal(a.test.labels, c.test.labels)
    assert torch.allclose(
        a.test.images * a.std[0] + a.mean[0], c.test.images * c.std[0] + c.mean[0]
    )
    assert abs(a.train.images.mean().item()) < 1e-3
    assert abs(a.train.images.std().item() - 1) < 1e-2
    # the normalisation is given back: mean/std reproduce [0, 1] pixels
    raw = a.train.images * a.std[0] + a.mean[0]
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5
    flat = {tuple(x.flatten().tolist()) for x in a.test.images}
    assert not any(tuple(x.flatten().tolist()) in flat for x in a.val.images[:50])


def test_limit_and_validation_fraction():
    data = load_dataset("digits", limit=100, val_fraction=0.2)
    assert len(data.train) == 80 and len(data.val) == 20 and len(data.test) == 100


def test_unknown_dataset_and_bad_arguments_are_clear_errors():
    with pytest.raises(UnknownNameError, match="digits"):
        load_dataset("digts")
    with pytest.raises(ConfigError, match="val_fraction"):
        load_dataset("digits", val_fraction=1.5)
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset("imagefolder:/no/such/folder")


@pytest.mark.skipif(not SHARED_ARCHIVE.is_file(), reason="shared CIFAR-10 archive not present")
def test_cifar10_from_the_shared_jpeg_archive_with_a_limit_and_a_cache(tmp_path):
    data = load_dataset("cifar10", root=SHARED_ARCHIVE.parent, limit=60, seed=3)
    assert data.input_shape == (3, 32, 32)
    assert data.class_names[:3] == ("airplane", "automobile", "bird")
    assert len(data.train) + len(data.val) == 60 and len(data.test) == 60
    assert len(set(data.train.labels.tolist())) >= 5  # a seeded sample, not the first class
    cached = list((tmp_path / "cache" / "datasets").glob("*.pt"))
    assert len(cached) == 1
    again = load_dataset("cifar10", root=SHARED_ARCHIVE.parent, limit=60, seed=3)
    assert torch.equal(data.train.images, again.train.images)


def test_imagefolder_reads_class_folders_and_carves_test_and_val(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, base in (("cats", 40), ("dogs", 200)):
        folder = tmp_path / "pets" / cls
        folder.mkdir(parents=True)
        for i in range(10):
            pixels = np.clip(base + rng.normal(0, 10, (12, 12, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    data = load_dataset(f"imagefolder:{tmp_path / 'pets'}", val_fraction=0.25)
    assert data.class_names == ("cats", "dogs")
    assert data.input_shape == (3, 12, 12)
    assert len(data.train) + len(data.val) + len(data.test) == 20
    assert len(data.test) == 4
