"""Your own images: train/val/test folders or one folder, mixed sizes, gray/RGB, --input-size,
--mean/--std, stratified splits and samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from autocompress.core.data import (
    describe_dataset,
    load_dataset,
    stratified_sample,
    stratified_split,
)
from autocompress.core.errors import ConfigError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOCOMPRESS_CACHE", str(tmp_path / "cache"))


def _write(folder, classes, per_class, size=(12, 12), mode="RGB", odd_size=None):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = odd_size if (odd_size and i % 2) else size
            shape = (h, w, 3) if mode == "RGB" else (h, w)
            pixels = (rng.random(shape) * 60 + 60 * c).astype(np.uint8)
            Image.fromarray(pixels, mode).save(folder / name / f"{i}.png")


def test_train_val_test_folders_are_used_as_given(tmp_path):
    for split, n in (("train", 6), ("val", 3), ("test", 2)):
        _write(tmp_path / "d" / split, ["a", "b"], n)
    data = load_dataset(f"imagefolder:{tmp_path / 'd'}")
    assert (len(data.train), len(data.val), len(data.test)) == (12, 6, 4)
    assert data.class_names == ("a", "b") and data.input_shape == (3, 12, 12)


def test_one_folder_is_split_seeded_and_stratified(tmp_path):
    _write(tmp_path / "d", ["a", "b", "c"], 20)
    data = load_dataset(f"imagefolder:{tmp_path / 'd'}", val_fraction=0.25)
    for split in (data.test, data.val):
        counts = torch.bincount(split.labels, minlength=3)
        assert counts.min() == counts.max() > 0  # every class in proportion
    again = load_dataset(f"imagefolder:{tmp_path / 'd'}", val_fraction=0.25)
    assert torch.equal(data.val.images, again.val.images)


def test_mixed_sizes_follow_the_torchvision_eval_transform(tmp_path):
    _write(tmp_path / "d" / "train", ["a", "b"], 4, size=(12, 12), odd_size=(20, 30))
    _write(tmp_path / "d" / "test", ["a", "b"], 2, size=(12, 12))
    data = load_dataset(f"imagefolder:{tmp_path / 'd'}")
    assert data.input_shape == (3, 12, 12)  # the most common size
    sized = load_dataset(f"imagefolder:{tmp_path / 'd'}", input_size=(8, 10))
    assert sized.input_shape == (3, 8, 10)
    with pytest.raises(ConfigError, match="imagefolder"):
        load_dataset("digits", input_size=(8, 8))


def test_grayscale_stays_one_channel_and_colour_makes_rgb(tmp_path):
    _write(tmp_path / "g", ["a", "b"], 4, mode="L")
    gray = load_dataset(f"imagefolder:{tmp_path / 'g'}")
    assert gray.input_shape[0] == 1 and describe_dataset(f"imagefolder:{tmp_path / 'g'}") == (
        2,
        1,
        (12, 12),
    )
    _write(tmp_path / "g" / "c", [""], 3, mode="RGB")  # one colour class folder
    mixed = load_dataset(f"imagefolder:{tmp_path / 'g'}")
    assert mixed.input_shape[0] == 3 and mixed.num_classes == 3


def test_given_mean_and_std_normalise(tmp_path):
    _write(tmp_path / "d", ["a", "b"], 6)
    own = load_dataset(f"imagefolder:{tmp_path / 'd'}")
    fixed = load_dataset(f"imagefolder:{tmp_path / 'd'}", mean=[0.5], std=[0.25])
    assert fixed.mean == (0.5, 0.5, 0.5) and fixed.std == (0.25, 0.25, 0.25)
    raw = (
        own.train.images * torch.tensor(own.std)[None, :, None, None]
        + torch.tensor(own.mean)[None, :, None, None]
    )
    assert torch.allclose(fixed.train.images, (raw - 0.5) / 0.25, atol=1e-5)
    with pytest.raises(ConfigError, match="2 values, the images have 3 channels"):
        load_dataset(f"imagefolder:{tmp_path / 'd'}", mean=[0.5, 0.5], std=[0.2, 0.2])


def test_stratified_sample_takes_every_class():
    labels = torch.tensor([0] * 50 + [1] * 50 + [2] * 50)  # sorted by class, as folders are
    picked = stratified_sample(labels, 30)
    assert torch.bincount(labels[picked]).tolist() == [10, 10, 10]
    val, rest = stratified_split(labels, 0.2, seed=0)
    assert torch.bincount(labels[val]).tolist() == [10, 10, 10] and len(rest) == 120
