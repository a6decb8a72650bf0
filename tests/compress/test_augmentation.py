"""Training augmentation of image folders: random-resized-crop + flip on tensors, batched;
evaluation stays the deterministic resize-short-side + center crop of the folder reader."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from autocompress.compress.student import finetune_augmentation
from autocompress.compress.training import (
    RESIZED_CROP_SCALE,
    TrainingSchedule,
    random_resized_crop_flip,
    resized_crop_scale,
    train,
)
from autocompress.core.data import load_dataset


def _images(n=16, c=3, h=32, w=32):
    torch.manual_seed(0)
    return torch.rand(n, c, h, w)


def test_crops_keep_the_shape_and_range_and_differ_per_image_and_per_step():
    images = _images()
    generator = torch.Generator().manual_seed(0)
    first = random_resized_crop_flip(images, generator=generator)
    second = random_resized_crop_flip(images, generator=generator)
    assert first.shape == images.shape and first.dtype == images.dtype
    # bilinear resampling inside the image: values stay within the image's range
    assert first.min() >= images.min() - 1e-6 and first.max() <= images.max() + 1e-6
    assert not torch.allclose(first, second)  # a new crop at every step
    same = torch.stack([images[0]] * 8)
    crops = random_resized_crop_flip(same, generator=generator)
    assert len({round(float(c.sum()), 3) for c in crops}) == 8  # a crop of its own per image
    # seeded: the same generator state gives the same crops
    again = random_resized_crop_flip(images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, first)


def test_a_whole_image_box_is_the_image_or_its_mirror():
    images = _images(8, 1, 24, 40)
    generator = torch.Generator().manual_seed(1)
    out = random_resized_crop_flip(
        images, scale=(1.0, 1.0), ratio=(40 / 24, 40 / 24), generator=generator, flip=False
    )
    assert torch.allclose(out, images, atol=1e-5)
    flipped = random_resized_crop_flip(
        images, scale=(1.0, 1.0), ratio=(40 / 24, 40 / 24), generator=generator
    )
    mirrored = [
        torch.allclose(f, i.flip(-1), atol=1e-5)
        for f, i in zip(flipped, images, strict=True)
        if not torch.allclose(f, i, atol=1e-5)
    ]
    assert mirrored and all(mirrored)
    assert len(mirrored) < len(images)  # about half are flipped


def test_small_crops_zoom_in():
    # a smooth horizontal ramp: a box of a quarter of the area spans about half the values
    ramp = torch.linspace(0, 1, 64).repeat(4, 1, 64, 1)
    out = random_resized_crop_flip(
        ramp, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=torch.Generator().manual_seed(0)
    )
    spans = out[:, 0, 0, :].amax(1) - out[:, 0, 0, :].amin(1)
    assert torch.allclose(spans, torch.full_like(spans, 0.5), atol=0.05)


def test_the_rule_image_folders_of_64_pixels_or_more():
    assert resized_crop_scale("imagefolder:/data/pets", (3, 64, 64)) == RESIZED_CROP_SCALE
    assert resized_crop_scale("imagefolder:/data/pets", (3, 224, 160)) == RESIZED_CROP_SCALE
    assert resized_crop_scale("imagefolder:/data/pets", (3, 224, 48)) is None
    assert resized_crop_scale("imagefolder:/data/pets", (3, 32, 32)) is None  # shifts win there
    assert resized_crop_scale("imagefolder:/data/pets", (1, 28, 28)) is None
    assert resized_crop_scale("cifar10", (3, 32, 32)) is None  # its own 4-pixel shifts
    assert resized_crop_scale("digits", (1, 8, 8)) is None


def _folder(tmp_path, sizes=((80, 120), (128, 96), (100, 100))):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        for split in ("train", "test"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(12):
                w, h = sizes[i % len(sizes)]
                pixels = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return f"imagefolder:{tmp_path}"


def test_an_image_folder_trains_on_resized_crops_and_evaluates_deterministically(tmp_path):
    name = _folder(tmp_path)
    data = load_dataset(name, input_size=(64, 64))
    again = load_dataset(name, input_size=(64, 64))
    # evaluation images: resize the short side + center crop, the same every time
    assert data.test.images.shape[1:] == (3, 64, 64)
    assert torch.equal(data.test.images, again.test.images)
    fields = finetune_augmentation(data, augment=True)
    assert fields["augment_resized_crop"] == RESIZED_CROP_SCALE
    schedule = TrainingSchedule(steps=3, batch_size=8, lr=1e-3, seed=0, **fields)
    assert schedule.augmentation() == {
        "kind": "random_resized_crop",
        "scale": list(RESIZED_CROP_SCALE),
        "ratio": [0.75, 4 / 3],
        "flip": True,
    }
    seen = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64 * 64, 2))

    def loss_fn(m, x, y, idx):
        seen.append((x.detach().clone(), idx.clone()))
        return torch.nn.functional.cross_entropy(m(x), y)

    train(model, data.train, loss_fn, schedule, device=torch.device("cpu"))
    assert len(seen) == 3
    for x, idx in seen:
        assert x.shape == (8, 3, 64, 64)
        assert not torch.allclose(x, data.train.images[idx])  # cropped, not the stored image
    # without augmentation, and for the built-in datasets, nothing changes
    assert finetune_augmentation(data, augment=False)["augment_resized_crop"] is None
    cifar_like = dataclasses.replace(data, name="cifar10", input_shape=(3, 32, 32))
    assert finetune_augmentation(cifar_like, augment=True)["augment_resized_crop"] is None
    assert finetune_augmentation(cifar_like, augment=True)["augment_padding"] == 4


@pytest.mark.parametrize("flip", [True, False])
def test_flip_is_recorded(flip):
    schedule = TrainingSchedule(augment_padding=4, augment_flip=flip)
    assert schedule.augmentation() == {"kind": "random_shift", "padding_px": 4, "flip": flip}
    assert TrainingSchedule().augmentation() == {"kind": "none"}
